"""The demo's HTML report: models, monitoring windows, drift per feature, timeline."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from boostline.registry import Registry

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
                html.escape(str(v["trigger"])),
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
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Boostline demo</title><style>{STYLE}</style></head><body>
<h1>Boostline demo: the lifecycle on one machine</h1>
<p>Retraining was triggered by <b>{html.escape(str(result.retrain_reason))}</b>;
{result.executions_started} pipeline execution(s) were started by the retrain handler.
Version v{result.live_version} is live.</p>
<h2>Model versions</h2>
{_table(["version", "status", "test AUC", "threshold", "trained because", "details"], models)}
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
<h2>Drift per feature</h2>
{"".join(drift_sections) or "<p>No violations.</p>"}
<h2>Timeline</h2>
{_table(["time", "who", "what"], timeline)}
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return out
