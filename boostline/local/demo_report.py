"""The demo's HTML report: models, monitoring windows, drift per feature, timeline."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from boostline.local import demo_charts
from boostline.registry import Registry
from training_scripts import data_quality as dq

STYLE = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left}th{background:#f3f3f3}.live{font-weight:bold;color:#0a6}.bad{color:#b00}
"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _drift_rows(window: Path) -> list[list[Any]]:
    path = window / "data-quality" / "constraint_violations.json"
    if not path.exists():
        return []
    violations = json.loads(path.read_text()).get("violations", [])
    return [
        [
            html.escape(v["feature_name"]),
            html.escape(v["constraint_check_type"]),
            html.escape(v["description"]),
        ]
        for v in violations
    ]


def describe_trigger(reason: Any) -> str:
    """A trigger reason ("drift: <endpoint> data-quality; new-data: 2 files") in words."""
    words = []
    for part in str(reason or "").split("; "):
        kind, _, what = part.partition(": ")
        if kind == "schedule":
            words.append("the retrain schedule came round")
        elif kind == "drift" and what.endswith(("data-quality", "model-quality")):
            endpoint, _, monitor = what.rpartition(" ")
            check = "the inputs drifted" if monitor == "data-quality" else "the model lost skill"
            words.append(f"the {monitor} monitor of {endpoint} found that {check}")
        elif kind == "drift":
            words.append(f"a drift alarm ({what}) went off")
        elif kind == "new-data":
            words.append(f"new data arrived ({what})")
        elif part:
            words.append(part)
    return "; ".join(words) or "a person started it"


def _approval_rate(package: Any) -> float | None:
    """Share of test applicants the model approves (predicts no default) at its threshold."""
    try:
        evaluation = json.loads(package.evaluation.read_text())
        matrix = evaluation["binary_classification_metrics"]["confusion_matrix"]
    except (OSError, KeyError, ValueError, TypeError):
        return None
    total = sum(float(v) for row in matrix.values() for v in row.values())
    approved = sum(float(row.get("0", 0)) for row in matrix.values())
    return approved / total if total else None


def _window_statistics(window: Path) -> dict[str, Any] | None:
    path = window / "data-quality" / "statistics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _pictures(result: Any, registry: Registry, img: Path) -> tuple[str, str, str]:
    """(drift section, model-quality picture, timeline picture) as HTML."""
    distances: dict[str, dict[str, float]] = {}
    drifted_sections = []
    threshold = 0.1
    for phase, m in result.monitoring.items():
        current = _window_statistics(result.workdir / "monitoring" / phase)
        version = m.get("model_version")
        if current is None or version is None:
            continue
        package = registry.describe(version)
        baseline = json.loads(package.baseline_statistics.read_text())
        constraints = json.loads(package.baseline_constraints.read_text())
        comparison = constraints.get("monitoring_config", {}).get("distribution_constraints", {})
        threshold = float(comparison.get("comparison_threshold", threshold))
        distances[phase] = dq.distances(current, baseline)
        base_by_name = {f["name"]: f for f in baseline.get("features", [])}
        for feature in current.get("features", []):
            name = feature["name"]
            if name in m.get("drifted_features", []) and name in base_by_name:
                chart = demo_charts.distribution_chart(
                    name, base_by_name[name], feature, img / f"{phase}-{name}.png"
                )
                drifted_sections.append(
                    f'<figure><img src="img/{chart.name}" alt="{html.escape(name)}">'
                    f"<figcaption>{html.escape(phase)} window: {html.escape(name)}, baseline "
                    "vs captured</figcaption></figure>"
                )
    drift = ""
    if distances:
        chart = demo_charts.drift_chart(distances, threshold, img / "drift.png")
        rows = [
            [html.escape(f)] + [f"{distances[w].get(f, 0.0):.3f}" for w in distances]
            for f in sorted({f for d in distances.values() for f in d})
        ]
        drift = (
            f'<img src="img/{chart.name}" alt="drift per feature and window">'
            + _table(["feature", *distances], rows)
            + "".join(drifted_sections)
        )
    aucs = {p: m.get("auc") for p, m in result.monitoring.items()}
    quality = ""
    if any(a is not None for a in aucs.values()):
        from boostline.config import load_config

        minimum = load_config().gate.min_auc
        chart = demo_charts.auc_chart(aucs, minimum, img / "auc.png")
        quality = f'<img src="img/{chart.name}" alt="live AUC per window">'
    chart = demo_charts.timeline_chart(result.timeline, img / "timeline.png")
    return drift, quality, f'<img src="img/{chart.name}" alt="timeline">'


def _changes(result: Any, registry: Registry) -> str:
    """What changed from one version to the next: AUC, threshold, approval rate."""
    rows = []
    versions = [registry.describe(v["version"]) for v in result.versions]
    for before, after in zip(versions, versions[1:], strict=False):
        cells = [f"v{before.version} &rarr; v{after.version}"]
        for get, fmt in ((lambda p: p.auc, ".4f"), (lambda p: p.threshold, ".3f")):
            a, b = get(before), get(after)
            cells.append("-" if a is None or b is None else f"{a:{fmt}} &rarr; {b:{fmt}}")
        a, b = _approval_rate(before), _approval_rate(after)
        cells.append("-" if a is None or b is None else f"{a:.1%} &rarr; {b:.1%}")
        meta = after.data.get("CustomerMetadataProperties", {})
        cells.append(html.escape(describe_trigger(meta.get("trigger_reason"))))
        rows.append(cells)
    if not rows:
        return "<p>One version only.</p>"
    return _table(["versions", "test AUC", "threshold", "approval rate", "why retrained"], rows)


def write_report(result: Any, registry: Registry) -> Path:
    out: Path = result.report
    out.parent.mkdir(parents=True, exist_ok=True)
    models = []
    for v in result.versions:
        report = v.get("report") or registry.describe(v["version"]).path / "report" / "index.html"
        link = os.path.relpath(report, out.parent)
        live = ' <span class="live">live</span>' if v["version"] == result.live_version else ""
        auc = f"{v['auc']:.4f}" if v["auc"] is not None else "-"
        models.append(
            [
                f"v{v['version']}{live}",
                v["status"],
                auc,
                f"{v['threshold']:.3f}" if v["threshold"] is not None else "-",
                html.escape(describe_trigger(v["trigger"])),
                f'<a href="{link}">evaluation report</a>',
            ]
        )
    windows = []
    drift_sections = []
    for phase, m in result.monitoring.items():
        auc = f"{m['auc']:.4f}" if m.get("auc") is not None else "n/a"
        cls = ' class="bad"' if m["data_quality_violations"] else ""
        windows.append(
            [
                phase,
                m["records"],
                auc,
                f"<span{cls}>{m['data_quality_violations']}</span>",
                m.get("model_quality_violations", 0),
            ]
        )
        rows = _drift_rows(result.workdir / "monitoring" / phase)
        if rows:
            drift_sections.append(
                f"<h3>{html.escape(phase)} window</h3>"
                + _table(["feature", "check", "description"], rows)
            )
    timeline = [
        [f"{e['t']:.1f}s", html.escape(e["stage"]), html.escape(e["message"])]
        for e in result.timeline
    ]
    accesses = [
        [html.escape(role), c["checked"], c["allowed"]]
        for role, c in getattr(result, "access_checks", {}).items()
    ]
    drift_pictures, quality_picture, timeline_picture = _pictures(
        result, registry, out.parent / "img"
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Boostline demo</title><style>{STYLE}</style></head><body>
<h1>Boostline demo: the lifecycle on one machine</h1>
<p>Retraining was triggered because <b>{html.escape(describe_trigger(result.retrain_reason))}</b>;
{result.executions_started} pipeline execution(s) were started by the retrain handler.
Version v{result.live_version} is live.</p>
<h2>Model versions</h2>
{_table(["version", "status", "test AUC", "threshold", "trained because", "details"], models)}
<h2>What changed between versions</h2>
{_changes(result, registry)}
<h2>Access checks</h2>
<p>Every access the jobs, the Lambda functions and the endpoint made, checked against the
synthesized policy of the role it runs as, from the assembly
<code>{html.escape(str(getattr(result, "assembly", "")))}</code>.</p>
{_table(["role", "accesses checked", "allowed"], accesses)}
<h2>Monitoring windows</h2>
<p>Data quality compares the captured requests with the live model's training baseline;
model quality joins captured predictions with outcomes that arrived later.</p>
{
        _table(
            [
                "window",
                "captured requests",
                "live-model AUC",
                "data-quality violations",
                "model-quality violations",
            ],
            windows,
        )
    }
<h2>Model quality per window</h2>
{quality_picture or "<p>No labelled outcomes yet.</p>"}
<h2>Drift per feature</h2>
{drift_pictures}
<h3>Violations</h3>
{"".join(drift_sections) or "<p>No violations.</p>"}
<h2>Timeline</h2>
{timeline_picture}
{_table(["time", "who", "what"], timeline)}
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return out
