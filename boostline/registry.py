"""The local model registry: a stand-in for a SageMaker Model Registry group.

A model package group holds numbered versions; each keeps its artifact, its
evaluation, its drift baselines and its approval status with who or what set
it and when. Field names follow DescribeModelPackage so code and people can
read one and the other alike.

    <workdir>/registry/<group>/group.json
    <workdir>/registry/<group>/<version>/package.json
    <workdir>/registry/<group>/<version>/model.tar.gz, evaluation.json,
                                      statistics.json, constraints.json, report/
    <workdir>/registry/<group>/deployments.json   which version is live where, and
                                                  every deployment that went live or failed

Writers take the group's file lock; every file is written to a temporary name
and renamed, so a reader never sees half a record and a crash loses nothing.

A version whose package.json cannot be read (truncated, not JSON, a key missing or
of the wrong kind) is damaged: `scan()` returns it apart, with the file and the
reason, and every other version stays usable; `describe()` on it raises a
RegistryError naming the file and the reason. `archive_problem()` says what is wrong
with a version's model.tar.gz (not gzip, cut short, missing), for the commands that
list or unpack it. A damaged version keeps its number: the next version is after it.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
STATUSES: tuple[str, ...] = ("PendingManualApproval", "Approved", "Rejected")
DEFAULT_GROUP = "boostline-models"
LOCAL_ARN = "arn:aws:sagemaker:local:000000000000:model-package/{group}/{version}"


class RegistryError(ValueError):
    """A registry request cannot be met; the message says why."""


@dataclass(frozen=True)
class DamagedVersion:
    """A version that cannot be used, the file at fault and why."""

    version: int
    file: Path
    reason: str

    def __str__(self) -> str:
        return f"model version {self.version} is damaged: {self.file}: {self.reason}"


class DamagedVersionError(RegistryError):
    """The version asked for is damaged; `damage` says which file and why."""

    def __init__(self, damage: DamagedVersion) -> None:
        super().__init__(str(damage))
        self.damage = damage


# What every reader of a record relies on: key -> the kind of value it must hold.
REQUIRED_FIELDS: dict[str, type] = {
    "ModelPackageGroupName": str,
    "ModelPackageVersion": int,
    "ModelPackageArn": str,
    "ModelApprovalStatus": str,
    "CreationTime": str,
}
NUMERIC_METADATA = ("auc", "decision_threshold")


@dataclass(frozen=True)
class ModelPackage:
    """One version, as DescribeModelPackage would describe it."""

    data: dict[str, Any]
    path: Path

    @property
    def version(self) -> int:
        return int(self.data["ModelPackageVersion"])

    @property
    def status(self) -> str:
        return str(self.data["ModelApprovalStatus"])

    @property
    def arn(self) -> str:
        return str(self.data["ModelPackageArn"])

    @property
    def auc(self) -> float | None:
        value = self.data.get("CustomerMetadataProperties", {}).get("auc")
        return float(value) if value is not None else None

    @property
    def threshold(self) -> float | None:
        value = self.data.get("CustomerMetadataProperties", {}).get("decision_threshold")
        return float(value) if value is not None else None

    @property
    def model_tar(self) -> Path:
        return self.path / "model.tar.gz"

    @property
    def evaluation(self) -> Path:
        return self.path / "evaluation.json"

    @property
    def baseline_statistics(self) -> Path:
        return self.path / "statistics.json"

    @property
    def baseline_constraints(self) -> Path:
        return self.path / "constraints.json"


def load_package(folder: Path) -> ModelPackage:
    """The version in `folder`; raises DamagedVersionError if its record is unusable."""
    version = int(folder.name)
    record = folder / "package.json"

    def damaged(reason: str) -> DamagedVersionError:
        return DamagedVersionError(DamagedVersion(version, record, reason))

    try:
        text = record.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise damaged("the file is missing") from None
    except UnicodeDecodeError:
        raise damaged("not UTF-8 text") from None
    except OSError as exc:
        raise damaged(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        reason = "truncated: not valid JSON" if cut else "not valid JSON"
        raise damaged(f"{reason} ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise damaged("not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise damaged(f"holds a JSON {type(data).__name__}, not an object")
    missing = [key for key in REQUIRED_FIELDS if key not in data]
    if missing:
        raise damaged(f"lacks {', '.join(missing)}")
    for key, kind in REQUIRED_FIELDS.items():
        value = data[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise damaged(f"{key} is {_kind(value)}, not {kind.__name__}")
    if data["ModelPackageVersion"] != version:
        raise damaged(
            f"ModelPackageVersion is {data['ModelPackageVersion']}, "
            f"but the folder is version {version}"
        )
    if data["ModelApprovalStatus"] not in STATUSES:
        raise damaged(f"ModelApprovalStatus is not one of {', '.join(STATUSES)}")
    metadata = data.get("CustomerMetadataProperties", {})
    if not isinstance(metadata, dict):
        raise damaged(f"CustomerMetadataProperties is {_kind(metadata)}, not an object")
    for key in NUMERIC_METADATA:
        value = metadata.get(key)
        if value is None:
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            raise damaged(f"CustomerMetadataProperties {key} is not a number") from None
    return ModelPackage(data, folder)


def archive_problem(path: Path) -> str | None:
    """What makes `path` unusable as a model.tar.gz (None when it reads to its end)."""
    if not path.is_file():
        return "the file is missing"
    try:
        with tarfile.open(path, "r:gz") as tar:
            for _ in tar:  # every header, to the end of the stream: finds a cut-short file
                pass
    except tarfile.ReadError as exc:
        return f"not a gzip-compressed tar archive ({exc})"
    except (EOFError, zlib.error) as exc:
        return f"cut short or corrupt ({exc})"
    except OSError as exc:  # gzip.BadGzipFile, or the file cannot be read
        return f"cannot be read ({exc})"
    except tarfile.TarError as exc:
        return f"not a valid tar archive ({exc})"
    return None


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Registry:
    def __init__(self, root: Path, group: str = DEFAULT_GROUP) -> None:
        self.group = group
        self.dir = root / "registry" / group
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.dir / ".lock"), timeout=60)

    # ------------------------------------------------------------ reading

    def _folders(self) -> list[Path]:
        return [c for c in self.dir.iterdir() if c.is_dir() and c.name.isdigit()]

    def scan(self) -> tuple[list[ModelPackage], list[DamagedVersion]]:
        """(usable versions, damaged versions), each in version order."""
        found, damaged = [], []
        for child in self._folders():
            try:
                found.append(load_package(child))
            except DamagedVersionError as exc:
                damaged.append(exc.damage)
        found.sort(key=lambda p: p.version)
        damaged.sort(key=lambda d: d.version)
        return found, damaged

    def versions(self) -> list[ModelPackage]:
        """The usable versions (see scan() for the damaged ones)."""
        return self.scan()[0]

    def _next_version(self) -> int:
        return max((int(c.name) for c in self._folders()), default=0) + 1

    def describe(self, version: int | str) -> ModelPackage:
        """A version by number; "live": the one deployed last (latest approved if none
        ever was); "latest-approved": the newest Approved one."""
        if str(version) == "live":
            live = self.live()
            if live is not None:
                return self.describe(live["version"])
        if str(version) in ("latest-approved", "live"):
            package = self.latest_approved()
            if package is None:
                raise RegistryError(f"no approved model in group {self.group!r}")
            return package
        try:
            number = int(version)
        except ValueError:
            raise RegistryError(f"{version!r} is not a version number") from None
        folder = self.dir / str(number)
        if number < 1 or not folder.is_dir():
            raise RegistryError(f"group {self.group!r} has no version {number}")
        return load_package(folder)

    def latest_approved(self) -> ModelPackage | None:
        approved = [p for p in self.versions() if p.status == "Approved"]
        return approved[-1] if approved else None

    # ------------------------------------------------------------ deployments

    @property
    def _deployments_file(self) -> Path:
        return self.dir / "deployments.json"

    def deployments(self) -> dict[str, Any]:
        """{"live": {endpoint: {...}}, "history": [...]}; empty when nothing was deployed."""
        path = self._deployments_file
        if not path.is_file():
            return {"live": {}, "history": []}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data.get("live"), dict) or not isinstance(data.get("history"), list):
                raise ValueError("needs a live object and a history list")
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path} is damaged: {exc}") from None
        return data

    def live(self, endpoint: str | None = None) -> dict[str, Any] | None:
        """The live deployment of an endpoint (any endpoint's, newest, when None)."""
        live = self.deployments()["live"]
        if endpoint is not None:
            return live.get(endpoint)
        return max(live.values(), key=lambda d: d["since"]) if live else None

    def record_deployment(
        self, endpoint: str, version: int, outcome: str, event: str, reason: str = ""
    ) -> dict[str, Any]:
        """A deployment of `version` on `endpoint`: "live" (it serves now) or "failed"."""
        if outcome not in ("live", "failed"):
            raise RegistryError(f"deployment outcome {outcome!r} is not live or failed")
        entry = {
            "endpoint": endpoint,
            "version": int(version),
            "outcome": outcome,
            "at": now(),
            "event": event,
            **({"reason": reason} if reason else {}),
        }
        with self._lock:
            data = self.deployments()
            data["history"].append(entry)
            if outcome == "live":
                data["live"][endpoint] = {
                    "version": int(version),
                    "since": entry["at"],
                    "event": event,
                }
            _write_json(self._deployments_file, data)
        return entry

    # ------------------------------------------------------------ writing

    def register(
        self,
        *,
        model_tar: Path,
        evaluation: Path,
        baseline_dir: Path | None,
        report_dir: Path | None,
        status: ApprovalStatus,
        approved_by: str,
        metadata: dict[str, Any],
    ) -> ModelPackage:
        """Add a version; artifacts are copied in first, the record written last."""
        _check_status(status)
        for path in (model_tar, evaluation):
            if not path.is_file():
                raise RegistryError(f"cannot register: {path} does not exist")
        metrics = json.loads(evaluation.read_text())
        with self._lock:
            version = self._next_version()
            staging = Path(tempfile.mkdtemp(dir=self.dir, prefix=f".{version}-"))
            shutil.copy2(model_tar, staging / "model.tar.gz")
            shutil.copy2(evaluation, staging / "evaluation.json")
            if baseline_dir is not None:
                for name in ("statistics.json", "constraints.json"):
                    if (baseline_dir / name).exists():
                        shutil.copy2(baseline_dir / name, staging / name)
            if report_dir is not None and report_dir.is_dir():
                shutil.copytree(report_dir, staging / "report")
            final = self.dir / str(version)
            record = self._record(version, final, status, approved_by, metrics, metadata)
            _write_json(staging / "package.json", record)
            os.replace(staging, final)  # the version appears whole or not at all
        return ModelPackage(record, final)

    def register_request(
        self, request: dict[str, Any], files: dict[str, Path], *, by: str
    ) -> ModelPackage:
        """Add a version from a CreateModelPackage request, recorded as the request gives it.

        The record is the request plus what DescribeModelPackage adds (version, ARN,
        times, status history); nothing else, so a field the pipeline does not register
        is not in the local registry either. `files` are local copies of the objects the
        request names (model.tar.gz, evaluation.json, statistics.json, constraints.json)
        for the local readers; the record keeps the request's S3 URIs.
        """
        status = str(request.get("ModelApprovalStatus", "PendingManualApproval"))
        _check_status(status)
        metadata = request.get("CustomerMetadataProperties", {})
        for key, value in metadata.items():
            if not isinstance(value, str):  # CreateModelPackage takes strings only
                raise RegistryError(f"CustomerMetadataProperties {key!r} is not a string")
        with self._lock:
            version = self._next_version()
            staging = Path(tempfile.mkdtemp(dir=self.dir, prefix=f".{version}-"))
            for name, source in files.items():
                shutil.copy2(source, staging / name)
            final = self.dir / str(version)
            created = now()
            group = str(request.get("ModelPackageGroupName", self.group))
            record = {
                **request,
                "ModelPackageGroupName": group,
                "ModelPackageVersion": version,
                "ModelPackageArn": LOCAL_ARN.format(group=group, version=version),
                "ModelPackageStatus": "Completed",
                "CreationTime": created,
                "ModelApprovalStatus": status,
                "ApprovalHistory": [
                    {
                        "ModelApprovalStatus": status,
                        "By": by,
                        "Time": created,
                        "Reason": "registered",
                    }
                ],
            }
            _write_json(staging / "package.json", record)
            os.replace(staging, final)
        return ModelPackage(record, final)

    def set_status(
        self, version: int | str, status: ApprovalStatus, *, by: str, reason: str = ""
    ) -> ModelPackage:
        _check_status(status)
        with self._lock:
            package = self.describe(version)
            data = dict(package.data)
            if data["ModelApprovalStatus"] == status:
                return package
            data["ModelApprovalStatus"] = status
            data["LastModifiedTime"] = now()
            data["ApprovalDescription"] = reason
            data["ApprovalHistory"] = [
                *data.get("ApprovalHistory", []),
                {"ModelApprovalStatus": status, "By": by, "Time": now(), "Reason": reason},
            ]
            _write_json(package.path / "package.json", data)
        return ModelPackage(data, package.path)

    def _record(
        self,
        version: int,
        final: Path,
        status: str,
        approved_by: str,
        metrics: dict[str, Any],
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        created = now()
        bcm = metrics.get("binary_classification_metrics", {})
        summary = {
            name: bcm[name]["value"]
            for name in ("auc", "precision", "recall", "f1", "accuracy")
            if isinstance(bcm.get(name), dict) and "value" in bcm[name]
        }
        properties = {
            **{k: v for k, v in metadata.items() if v is not None},
            **summary,
            "decision_threshold": metrics.get("decision_threshold"),
        }
        baselines = {
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": (final / "statistics.json").as_uri(),
                },
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": (final / "constraints.json").as_uri(),
                },
            },
        }
        return {
            "ModelPackageGroupName": self.group,
            "ModelPackageVersion": version,
            "ModelPackageArn": LOCAL_ARN.format(group=self.group, version=version),
            "ModelPackageStatus": "Completed",
            "CreationTime": created,
            "ModelApprovalStatus": status,
            "ApprovalHistory": [
                {
                    "ModelApprovalStatus": status,
                    "By": approved_by,
                    "Time": created,
                    "Reason": "registered",
                }
            ],
            "InferenceSpecification": {
                "Containers": [{"ModelDataUrl": (final / "model.tar.gz").as_uri()}],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv"],
            },
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": (final / "evaluation.json").as_uri(),
                    }
                },
                **baselines,
            },
            "CustomerMetadataProperties": {k: _text(v) for k, v in properties.items()},
        }


def _text(value: Any) -> str:
    """SageMaker keeps customer metadata as strings; so do we."""
    return value if isinstance(value, str) else json.dumps(value)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise RegistryError(f"approval status must be one of {STATUSES}, got {status!r}")
