"""The fit pass's partial statistics: what one host saw, and how hosts' partials merge.

A partial is a small JSON file, one per host of the fit step (`fit-<host>.json`). Every
field merges exactly: counts add; numeric sums are correctly rounded per host
(math.fsum) and merged with fsum in sorted host order, so every host of the encode step
computes the same bits from the same files. Nothing here needs a quantile, so no sketch.
A partial also names each raw file the host read, with its size and digest
(`InputFile`), so the encode pass can tell that it reads the very bytes the fit read.

Runs in the SageMaker XGBoost image (Python 3.10, stdlib only).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PARTIAL_FORMAT = "boostline-preprocess-fit/2"  # 2: `inputs`, files with digests
PARTIAL_PREFIX = "fit-"
RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
RESOURCE_CONFIG_ENV = "BOOSTLINE_RESOURCE_CONFIG"  # moves it, for the local runner
SPLITS = ("train", "validation", "test")


class StatsError(RuntimeError):
    """Partial statistics are missing, malformed or belong to another run."""


@dataclass
class NumericStats:
    count: int = 0  # present values of kept rows
    missing: int = 0
    total: float = 0.0
    minimum: float | None = None
    maximum: float | None = None

    def add(self, values: list[float], low: float, high: float, missing: int) -> None:
        """Add one batch: its present values (finite), their min and max, its missing count."""
        self.missing += missing
        if not values:
            return
        self.count += len(values)
        self.total = math.fsum([self.total, math.fsum(values)])
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "missing": self.missing,
            "sum": self.total,
            "min": self.minimum,
            "max": self.maximum,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NumericStats:
        return cls(
            int(data["count"]), int(data["missing"]), float(data["sum"]), data["min"], data["max"]
        )


@dataclass(frozen=True)
class InputFile:
    """A raw file as the fit pass read it: its key, its bytes, and their digest."""

    key: str  # the path below the input folder, as the S3 key below the prefix
    size: int  # bytes of the file as stored (a .gz compressed)
    digest: str  # "<algorithm>:<hex>" over those bytes

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "bytes": self.size, "digest": self.digest}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputFile:
        size = data["bytes"]
        if not isinstance(size, int) or size < 0 or ":" not in str(data["digest"]):
            raise ValueError("bad input file record")
        return cls(str(data["key"]), size, str(data["digest"]))


@dataclass
class Partial:
    """What one host of the fit pass read, validated and counted."""

    host: str
    settings: dict[str, Any]
    # its files' keys: paths relative to the input folder, as S3 keys below the prefix
    files: list[str] = field(default_factory=list)
    # the same files with their sizes and digests, in the same order
    inputs: list[InputFile] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # the header of its files
    dropped_columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_rejected: int = 0
    rejection_reasons: Counter[str] = field(default_factory=Counter)
    # kept rows per split and label: {"train": [negative, positive], ...}
    split_labels: dict[str, list[int]] = field(
        default_factory=lambda: {name: [0, 0] for name in SPLITS}
    )
    # per categorical feature: training rows per (trimmed) value
    categories: dict[str, Counter[str]] = field(default_factory=dict)
    numerical: dict[str, NumericStats] = field(default_factory=dict)

    @property
    def train_rows(self) -> int:
        return sum(self.split_labels["train"])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PARTIAL_FORMAT,
            "host": self.host,
            "settings": self.settings,
            "files": self.files,
            "inputs": [f.to_json() for f in self.inputs],
            "columns": self.columns,
            "dropped_columns": self.dropped_columns,
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rejection_reasons": dict(sorted(self.rejection_reasons.items())),
            "split_labels": self.split_labels,
            "categories": {k: dict(sorted(v.items())) for k, v in self.categories.items()},
            "numerical": {k: v.to_json() for k, v in self.numerical.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> Partial:
        if not isinstance(data, dict) or data.get("format") != PARTIAL_FORMAT:
            raise StatsError(f"{source}: not a fit partial of format {PARTIAL_FORMAT}")
        try:
            partial = cls(
                host=str(data["host"]),
                settings=dict(data["settings"]),
                files=[str(f) for f in data["files"]],
                inputs=[InputFile.from_json(f) for f in data["inputs"]],
                columns=[str(c) for c in data["columns"]],
                dropped_columns=[str(c) for c in data["dropped_columns"]],
                rows_read=int(data["rows_read"]),
                rows_rejected=int(data["rows_rejected"]),
                rejection_reasons=Counter(
                    {str(k): int(v) for k, v in data["rejection_reasons"].items()}
                ),
                split_labels={
                    name: [int(n) for n in data["split_labels"][name]] for name in SPLITS
                },
                categories={
                    str(k): Counter({str(v): int(n) for v, n in counts.items()})
                    for k, counts in data["categories"].items()
                },
                numerical={str(k): NumericStats.from_json(v) for k, v in data["numerical"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StatsError(f"{source}: malformed fit partial ({type(exc).__name__})") from None
        if partial.inputs and [f.key for f in partial.inputs] != partial.files:
            raise StatsError(f"{source}: malformed fit partial (inputs do not match files)")
        return partial


@dataclass
class Merged:
    """Every host's partial, merged in sorted host order."""

    partials: list[Partial]  # sorted by host
    rows_read: int
    rows_rejected: int
    rejection_reasons: dict[str, int]  # most common first, ties by reason
    split_labels: dict[str, list[int]]
    categories: dict[str, Counter[str]]
    numerical: dict[str, NumericStats]
    dropped_columns: list[str]
    file_hosts: dict[str, str] = field(default_factory=dict)  # file key -> the host that read it

    @property
    def hosts(self) -> list[str]:
        return [p.host for p in self.partials]

    def partial(self, host: str) -> Partial:
        for p in self.partials:
            if p.host == host:
                return p
        raise StatsError(f"no fit partial for host {host}; the fit step ran on {self.hosts}")


def merge(partials: list[Partial]) -> Merged:
    """Merge partials; the result depends only on their contents, not on their order."""
    if not partials:
        raise StatsError("no fit partials to merge")
    ordered = sorted(partials, key=lambda p: p.host)
    hosts = [p.host for p in ordered]
    if len(set(hosts)) != len(hosts):
        raise StatsError(f"two fit partials name the same host: {hosts}")
    first = ordered[0]
    seen: dict[str, str] = {}
    for p in ordered:
        if p.settings != first.settings:
            raise StatsError(
                f"fit partials of {first.host} and {p.host} were made with different settings"
            )
        if p.files and first.files and p.columns != first.columns:
            raise StatsError(
                f"the files of {p.host} have other columns than those of {first.host}: "
                f"{p.columns} vs {first.columns}"
            )
        for name in p.files:
            if name in seen:
                raise StatsError(f"file {name} was read by both {seen[name]} and {p.host}")
            seen[name] = p.host
    reasons: Counter[str] = Counter()
    split_labels = {name: [0, 0] for name in SPLITS}
    categories: dict[str, Counter[str]] = {}
    numerical: dict[str, NumericStats] = {}
    for p in ordered:
        reasons.update(p.rejection_reasons)
        for name in SPLITS:
            negative, positive = p.split_labels[name]
            split_labels[name] = [
                split_labels[name][0] + negative,
                split_labels[name][1] + positive,
            ]
        for feature, counts in p.categories.items():
            categories.setdefault(feature, Counter()).update(counts)
    for feature in sorted({f for p in ordered for f in p.numerical}):
        parts = [p.numerical[feature] for p in ordered if feature in p.numerical]
        lows = [s.minimum for s in parts if s.minimum is not None]
        highs = [s.maximum for s in parts if s.maximum is not None]
        numerical[feature] = NumericStats(
            count=sum(s.count for s in parts),
            missing=sum(s.missing for s in parts),
            total=math.fsum(s.total for s in parts),
            minimum=min(lows) if lows else None,
            maximum=max(highs) if highs else None,
        )
    return Merged(
        partials=ordered,
        rows_read=sum(p.rows_read for p in ordered),
        rows_rejected=sum(p.rows_rejected for p in ordered),
        rejection_reasons=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        split_labels=split_labels,
        categories=categories,
        numerical=numerical,
        dropped_columns=sorted({c for p in ordered for c in p.dropped_columns}),
        file_hosts=dict(sorted(seen.items())),
    )


def write_partial(directory: Path, partial: Partial) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PARTIAL_PREFIX}{partial.host}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(partial.to_json(), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_partials(directory: Path) -> list[Partial]:
    if not directory.is_dir():
        raise StatsError(f"fit input {directory} does not exist")
    files = sorted(directory.rglob(f"{PARTIAL_PREFIX}*.json"))
    if not files:
        raise StatsError(f"no {PARTIAL_PREFIX}<host>.json under {directory}: run --pass fit first")
    partials = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise StatsError(f"{file}: cannot be read as JSON ({type(exc).__name__})") from None
        partials.append(Partial.from_json(data, str(file)))
    return partials


# ---------------------------------------------------------------- hosts


def job_hosts(
    env: dict[str, str] | None = None, resource_config: Path | None = None
) -> tuple[list[str], str]:
    """(sorted host list, this host), as train.py's JobEnv reads them.

    SM_HOSTS / SM_CURRENT_HOST when set (a training job's variables); else the
    resourceconfig.json SageMaker writes for a processing job (`resource_config`, else
    $BOOSTLINE_RESOURCE_CONFIG, else its place in the container); else one host, algo-1.
    """
    env = dict(os.environ) if env is None else env
    if resource_config is None:
        resource_config = Path(env.get(RESOURCE_CONFIG_ENV) or RESOURCE_CONFIG)
    hosts: list[str] = []
    current: str | None = env.get("SM_CURRENT_HOST") or None
    if env.get("SM_HOSTS"):
        hosts = _host_list(env["SM_HOSTS"], "SM_HOSTS")
    elif resource_config.is_file():
        try:
            config = json.loads(resource_config.read_text(encoding="utf-8"))
            hosts = _host_list(json.dumps(config["hosts"]), str(resource_config))
            current = current or str(config["current_host"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StatsError(f"{resource_config}: unreadable ({type(exc).__name__})") from None
    hosts = sorted(hosts or [current or "algo-1"])
    current = current or hosts[0]
    if current not in hosts:
        raise StatsError(f"the current host {current!r} is not in the host list {hosts}")
    return hosts, current


def _host_list(text: str, source: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not value or not all(isinstance(h, str) for h in value):
        raise StatsError(f"{source}: expected a JSON list of host names")
    if len(set(value)) != len(value):
        raise StatsError(f"{source}: a host is named twice")
    return list(value)
