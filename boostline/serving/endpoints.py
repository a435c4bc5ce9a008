"""Local endpoints: the stand-in for a SageMaker endpoint, with blue/green deployment.

An endpoint is a name that always routes to one running fleet (one gunicorn
master of boostline.serving.server and its workers, serving one model version).
Its record lives in ``<root>/endpoints/<name>.json`` and outlives the process
that made it, so any later ``boostline`` command finds a running endpoint by
name; a record whose fleet no longer answers ``/ping`` is reported as stale
(status OutOfService), never trusted.

Deployment follows SageMaker's ``BlueGreenUpdatePolicy`` with ALL_AT_ONCE
traffic routing:

1. the new ("green") fleet starts beside the old ("blue") one on a fresh port;
2. it is health-checked: ``GET /ping``, then one real invocation (by default a
   valid CSV row of the model's width, built from its feature manifest; or the
   caller's ``health_check(url)``, where any exception fails the check);
3. on success the record is switched to green in one atomic rename: that is the
   traffic shift, as every ``invoke`` resolves the endpoint again;
4. blue keeps running for ``termination_wait`` seconds (TerminationWaitInSeconds),
   then stops gracefully (in-flight requests finish).

If green fails to start or fails the check, green is stopped and blue keeps
serving with its record unchanged; the result says ``RolledBack`` (``Failed``
for a first deployment, which has no blue to fall back to). Both fleets capture
data into the same ``<capture_dir>/<endpoint>/<variant>/yyyy/mm/dd/hh/`` tree, as
the variants of a SageMaker endpoint do. The health-check invocation carries the
inference id ``boostline-health-check-<uuid>`` so that monitoring can tell it
apart from traffic (model_quality.py skips it; it never has ground truth).

Record (``<name>.json``, written to a temporary file and renamed)::

    {"name", "status": "InService" | "Updating" | "Failed", "variant",
     "created", "modified", "failure_reason",
     "capture": {"directory", "sampling_percentage"},
     "live": FLEET | null,        # what invoke routes to
     "pending": FLEET | null,     # green, while it is being checked
     "retiring": FLEET | null,    # blue, during the termination wait
     "history": [{"model_version", "outcome": "InService" | "RolledBack" | "Failed",
                  "started", "finished", "replaced_version", "reason"}, ...]}
    FLEET = {"model_version", "model_dir", "url", "pid", "threshold", "workers",
             "started", "log_path"}

Deployments of one endpoint are serialised by a file lock
(``<root>/endpoints/.<name>.lock``). ``stop_all()`` stops every endpoint in the
records and every fleet this manager started (call it on Ctrl-C: the fleets run
in their own sessions, so a terminal's SIGINT does not reach them).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock
from filelock import Timeout as LockTimeout

from boostline.serving import server
from training_scripts import inference

ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's EndpointName
DEFAULT_VARIANT = server.DEFAULT_VARIANT
HEALTH_CHECK_ID_PREFIX = "boostline-health-check-"
MAX_HISTORY = 100
_REASON_CHARS = 2000

IN_SERVICE, UPDATING, FAILED, OUT_OF_SERVICE = "InService", "Updating", "Failed", "OutOfService"
ROLLED_BACK = "RolledBack"

HealthCheck = Callable[[str], None]


class EndpointError(RuntimeError):
    """An endpoint request that cannot be met; the message says why."""


class EndpointNotFound(EndpointError, LookupError):
    """No endpoint of that name."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Fleet:
    """One model version running as one gunicorn master with its workers."""

    model_version: int | str
    model_dir: str
    url: str
    pid: int
    threshold: float | None
    workers: int
    started: str
    log_path: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Fleet | None:
        if not data:
            return None
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class DeploymentResult:
    endpoint_name: str
    status: str  # InService (switched), RolledBack (blue kept), Failed (first deployment)
    model_version: int | str  # the version this deployment tried
    live_version: int | str | None  # what the endpoint serves now
    url: str | None  # where it serves it
    previous_version: int | str | None
    reason: str | None
    started: str
    finished: str

    @property
    def ok(self) -> bool:
        return self.status == IN_SERVICE


@dataclass(frozen=True)
class InvokeResult:
    """What InvokeEndpoint returns; a non-2xx status is a ModelError-like answer."""

    status: int
    body: bytes
    headers: dict[str, str]  # lower-case names
    model_version: int | str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class EndpointDescription:
    name: str
    status: str  # InService, Updating, Failed, or OutOfService for a stale record
    model_version: int | str | None
    url: str | None
    pid: int | None
    variant: str
    capture_dir: str | None
    sampling_percentage: int
    failure_reason: str | None
    created: str
    modified: str
    pending_version: int | str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- the manager


class EndpointManager:
    """Local endpoints under ``<root>/endpoints``; safe to use from several threads."""

    def __init__(
        self,
        root: Path,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        lock_timeout: float = 600.0,
        request_timeout: float = 75.0,
    ) -> None:
        self.root = Path(root)
        self.directory = self.root / "endpoints"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.lock_timeout = lock_timeout
        self.request_timeout = request_timeout
        self._children: dict[int, server.LocalEndpoint] = {}
        self._children_lock = threading.Lock()
        self._local = threading.local()

    # ------------------------------------------------------------------ deploy

    def deploy(
        self,
        name: str,
        model_dir: Path,
        *,
        model_version: int | str,
        threshold: float | None = None,
        capture_dir: Path | None = None,
        sampling_percentage: int = 100,
        variant_name: str = DEFAULT_VARIANT,
        workers: int = 2,
        health_check: HealthCheck | None = None,
        termination_wait: float = 0.0,
        env: Mapping[str, str] | None = None,
    ) -> DeploymentResult:
        """Deploy `model_dir` as `name`: blue/green, all at once, with rollback."""
        check_name(name)
        if threshold is not None:
            inference.check_threshold(threshold, "threshold")
        if not 0 <= int(sampling_percentage) <= 100:
            raise ValueError(f"sampling percentage must be 0 to 100, got {sampling_percentage}")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if termination_wait < 0 or not math.isfinite(termination_wait):
            raise ValueError("termination_wait must be a non-negative number of seconds")
        model_dir = Path(model_dir).resolve()
        started = _now()
        with self._lock(name):
            record = self._read(name)
            notes: list[str] = []
            if record is None:
                record = {
                    "name": name,
                    "status": UPDATING,
                    "variant": variant_name,
                    "created": started,
                    "modified": started,
                    "failure_reason": None,
                    "live": None,
                    "pending": None,
                    "retiring": None,
                    "history": [],
                }
            else:
                for key in ("pending", "retiring"):  # left by a deployment that died half-way
                    leftover = Fleet.from_json(record.get(key))
                    if leftover is not None:
                        self._stop_fleet(leftover)
                        record[key] = None
                if record.get("variant") != variant_name and record.get("live"):
                    raise EndpointError(
                        f"endpoint {name} serves variant {record.get('variant')!r}; "
                        f"stop it before deploying variant {variant_name!r}"
                    )
                record["variant"] = variant_name
            blue = Fleet.from_json(record.get("live"))
            if blue is not None and _gone(blue):
                notes.append(
                    f"the previous fleet (version {blue.model_version}, pid {blue.pid}) was "
                    "gone, so there was nothing to roll back to"
                )
                record["live"] = None
                blue = None
            capture_dir = Path(capture_dir).resolve() if capture_dir is not None else None
            record["status"] = UPDATING
            record["capture"] = {
                "directory": str(capture_dir) if capture_dir else None,
                "sampling_percentage": int(sampling_percentage),
            }
            record["modified"] = _now()
            self._write(record)

            green: Fleet | None = None
            try:
                green = self._start(
                    name,
                    model_dir,
                    model_version=model_version,
                    threshold=threshold,
                    capture_dir=capture_dir,
                    sampling_percentage=int(sampling_percentage),
                    variant_name=variant_name,
                    workers=workers,
                    env=env,
                )
                record["pending"] = asdict(green)
                self._write(record)
                self._health_check(green, model_dir, health_check)
            except Exception as exc:  # noqa: BLE001 - any failure of green is a rollback
                reason = _reason(exc)
                if green is not None:
                    self._stop_fleet(green)
                record["pending"] = None
                record["status"] = IN_SERVICE if blue is not None else FAILED
                record["failure_reason"] = reason
                self._remember(record, model_version, started, blue, ROLLED_BACK, reason, notes)
                self._write(record)
                return DeploymentResult(
                    endpoint_name=name,
                    status=ROLLED_BACK if blue is not None else FAILED,
                    model_version=model_version,
                    live_version=blue.model_version if blue else None,
                    url=blue.url if blue else None,
                    previous_version=blue.model_version if blue else None,
                    reason=reason,
                    started=started,
                    finished=_now(),
                )
            except BaseException:  # Ctrl-C while green starts or is checked: leave no orphan
                if green is not None:
                    self._stop_fleet(green)
                record["pending"] = None
                record["status"] = IN_SERVICE if blue is not None else FAILED
                record["failure_reason"] = "deployment interrupted"
                self._remember(
                    record, model_version, started, blue, ROLLED_BACK, "interrupted", notes
                )
                self._write(record)
                raise

            # the traffic shift: one atomic rename of the record
            record["live"] = asdict(green)
            record["pending"] = None
            record["retiring"] = asdict(blue) if blue is not None else None
            record["status"] = IN_SERVICE
            record["failure_reason"] = None
            self._remember(record, model_version, started, blue, IN_SERVICE, None, notes)
            self._write(record)
            try:
                if blue is not None and termination_wait > 0:
                    time.sleep(termination_wait)
            finally:
                if blue is not None:
                    self._forget_connection(blue.url)
                    self._stop_fleet(blue)
                    record["retiring"] = None
                    self._write(record)
        return DeploymentResult(
            endpoint_name=name,
            status=IN_SERVICE,
            model_version=model_version,
            live_version=green.model_version,
            url=green.url,
            previous_version=blue.model_version if blue else None,
            reason="; ".join(notes) or None,
            started=started,
            finished=_now(),
        )

    def deploy_package(self, name: str, package: Any, **kwargs: Any) -> DeploymentResult:
        """Deploy a registered model version (boostline.registry.ModelPackage).

        The package is unpacked once under ``<root>/models/<group>/<version>``; its
        decision threshold (from the evaluation) is used unless `threshold` is given.
        """
        from boostline.local.model_store import unpacked_model

        kwargs.setdefault("threshold", package.threshold)
        return self.deploy(
            name, unpacked_model(package, self.root), model_version=package.version, **kwargs
        )

    def _start(
        self,
        name: str,
        model_dir: Path,
        *,
        model_version: int | str,
        threshold: float | None,
        capture_dir: Path | None,
        sampling_percentage: int,
        variant_name: str,
        workers: int,
        env: Mapping[str, str] | None,
    ) -> Fleet:
        logs = self.directory / "logs" / name
        logs.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        log_path = logs / f"{stamp}-v{_safe(str(model_version))}.log"
        for attempt in range(3):
            port = server.free_port()
            try:
                endpoint = server.start_background(
                    model_dir,
                    port=port,
                    workers=workers,
                    capture_dir=capture_dir,
                    endpoint_name=name,
                    variant_name=variant_name,
                    threshold=threshold,
                    sampling_percentage=sampling_percentage,
                    log_path=log_path,
                    startup_timeout=self.startup_timeout,
                    env=dict(env) if env else None,
                )
            except RuntimeError as exc:
                if attempt < 2 and "Address already in use" in str(exc):
                    continue  # another process took the free port first
                raise EndpointError(
                    f"version {model_version} did not start: {_cause(str(exc))} "
                    f"(server log: {log_path})"
                ) from None
            except BaseException:
                # interrupted while it was starting: find it by its unique port and stop it
                pid = _server_pid_on_port(port)
                if pid is not None:
                    _stop_pid(pid, port, self.stop_timeout)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)  # our child, but its Popen is lost
                raise
            break
        with self._children_lock:
            self._children[endpoint.process.pid] = endpoint
        return Fleet(
            model_version=model_version,
            model_dir=str(model_dir),
            url=endpoint.url,
            pid=endpoint.process.pid,
            threshold=threshold,
            workers=workers,
            started=_now(),
            log_path=str(log_path),
        )

    def _health_check(self, green: Fleet, model_dir: Path, check: HealthCheck | None) -> None:
        if not server.ping(green.url, timeout=5.0):
            raise EndpointError(f"{green.url}/ping did not answer 200")
        if check is not None:
            try:
                check(green.url)
            except Exception as exc:
                raise EndpointError(f"health check failed: {_reason(exc)}") from exc
            return
        row = sample_row(model_dir)
        status, _, body = _post_once(
            green.url,
            row.encode(),
            {
                "Content-Type": inference.CSV,
                "Accept": inference.JSON,
                server.INFERENCE_ID_HEADER: f"{HEALTH_CHECK_ID_PREFIX}{uuid.uuid4()}",
            },
            timeout=self.request_timeout,
        )
        if status != 200:
            raise EndpointError(
                f"health-check invocation answered {status}: {body[:300].decode(errors='replace')}"
            )
        try:
            predictions = json.loads(body)["predictions"]
            probability = float(predictions[0]["probability"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EndpointError(
                f"health-check invocation answered an unreadable body: {exc}"
            ) from None
        if len(predictions) != 1 or not 0.0 <= probability <= 1.0:
            raise EndpointError(f"health-check invocation answered {predictions!r}")

    # ------------------------------------------------------------------ invoke

    def invoke(
        self,
        name: str,
        body: bytes,
        content_type: str = inference.CSV,
        accept: str = inference.JSON,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
    ) -> InvokeResult:
        """POST `body` to the endpoint's live fleet, resolved by name for this very call.

        Any HTTP status is returned (4xx/5xx are the model's answer, as ModelError
        carries it); EndpointError is raised only when no fleet answers.
        """
        headers = {"Content-Type": content_type, "Accept": accept}
        if inference_id is not None:
            headers[server.INFERENCE_ID_HEADER] = inference_id
        if custom_attributes is not None:
            headers[inference.CUSTOM_ATTRIBUTES_HEADER] = custom_attributes
        tried: set[str] = set()
        while True:
            fleet = self._live(name)
            if fleet.url in tried:
                raise EndpointError(
                    f"endpoint {name}: version {fleet.model_version} at {fleet.url} "
                    f"(pid {fleet.pid}) does not answer; the record may be stale "
                    "(describe it, then deploy again or stop it)"
                )
            tried.add(fleet.url)
            try:
                status, response_headers, data = self._post(fleet.url, body, headers)
            except TimeoutError:
                raise EndpointError(
                    f"endpoint {name}: no answer from version {fleet.model_version} within "
                    f"{self.request_timeout:g} s"
                ) from None
            except (OSError, http.client.HTTPException):
                continue  # the record may have switched meanwhile: resolve again
            return InvokeResult(status, data, response_headers, fleet.model_version)

    def _live(self, name: str) -> Fleet:
        record = self._read(name)
        if record is None:
            raise EndpointNotFound(f"no endpoint named {name!r} (deploy one first)")
        fleet = Fleet.from_json(record.get("live"))
        if fleet is None:
            raise EndpointError(
                f"endpoint {name} has no model in service (status {record.get('status')}"
                + (f": {record['failure_reason']}" if record.get("failure_reason") else "")
                + ")"
            )
        return fleet

    def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """One POST over this thread's keep-alive connection to `url` (one retry if stale)."""
        connections = self._connections()
        for fresh in (False, True):
            connection = None if fresh else connections.get(url)
            reused = connection is not None
            if connection is None:
                host, port = url.removeprefix("http://").rsplit(":", 1)
                connection = http.client.HTTPConnection(
                    host, int(port), timeout=self.request_timeout
                )
                connections[url] = connection
            try:
                connection.request("POST", "/invocations", body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                connections.pop(url, None)
                if reused and not isinstance(exc, TimeoutError):
                    continue  # the server closed an idle keep-alive connection
                raise
            if response.will_close:
                connection.close()
                connections.pop(url, None)
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    def _connections(self) -> dict[str, http.client.HTTPConnection]:
        connections = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        return connections

    def _forget_connection(self, url: str) -> None:
        connection = self._connections().pop(url, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close this thread's keep-alive connections (endpoints keep running)."""
        for connection in self._connections().values():
            connection.close()
        self._connections().clear()

    # ------------------------------------------------------------------ describe, stop

    def describe(self, name: str) -> EndpointDescription:
        """The endpoint as it is now: a record whose fleet is gone is reported OutOfService."""
        record = self._read(name)
        if record is None:
            raise EndpointNotFound(f"no endpoint named {name!r}")
        status = record["status"]
        reason = record.get("failure_reason")
        live = Fleet.from_json(record.get("live"))
        pending = Fleet.from_json(record.get("pending"))
        if status == UPDATING and not self._deploying(name):
            status = IN_SERVICE if live is not None else FAILED  # its deployer died
            pending = None
        if live is not None and not server.ping(live.url, timeout=2.0):
            if _gone(live):
                status = OUT_OF_SERVICE
                reason = (
                    f"stale record: version {live.model_version} at {live.url} (pid "
                    f"{live.pid}) is gone; deploy again or stop the endpoint"
                )
            else:
                reason = (
                    f"version {live.model_version} at {live.url} (pid {live.pid}) is running "
                    "but did not answer /ping within 2 s (busy or hung)"
                )
        capture = record.get("capture") or {}
        return EndpointDescription(
            name=record["name"],
            status=status,
            model_version=live.model_version if live else None,
            url=live.url if live else None,
            pid=live.pid if live else None,
            variant=record.get("variant", DEFAULT_VARIANT),
            capture_dir=capture.get("directory"),
            sampling_percentage=int(capture.get("sampling_percentage", 100)),
            failure_reason=reason,
            created=record["created"],
            modified=record["modified"],
            pending_version=pending.model_version if pending else None,
            history=list(record.get("history", [])),
        )

    def list_endpoints(self) -> list[EndpointDescription]:
        out = []
        for name in self._names():
            try:
                out.append(self.describe(name))
            except EndpointNotFound:  # stopped meanwhile
                continue
        return out

    def stop(self, name: str) -> bool:
        """Stop the endpoint's fleets and delete its record; False if there was none."""
        check_name(name)
        with self._lock(name):
            record = self._read(name)
            if record is None:
                return False
            for key in ("pending", "retiring", "live"):
                fleet = Fleet.from_json(record.get(key))
                if fleet is not None:
                    self._forget_connection(fleet.url)
                    self._stop_fleet(fleet)
            self._path(name).unlink(missing_ok=True)
        return True

    def stop_all(self, *, started_here: bool = False) -> list[str]:
        """Stop every recorded endpoint and every fleet this manager started.

        started_here: only the endpoints whose fleets this manager started (what a
        foreground command stops on Ctrl-C, leaving other commands' endpoints alone).
        """
        names = self._names()
        if started_here:
            with self._children_lock:
                mine = set(self._children)
            names = [n for n in names if self._pids(n) & mine]
        stopped = [name for name in names if self.stop(name)]
        with self._children_lock:
            children = list(self._children.values())
            self._children.clear()
        for child in children:
            _stop_child(child, self.stop_timeout)
        self.close()
        return stopped

    def _pids(self, name: str) -> set[int]:
        try:
            record = self._read(name) or {}
        except EndpointError:
            return set()
        return {
            int(record[key]["pid"]) for key in ("live", "pending", "retiring") if record.get(key)
        }

    # ------------------------------------------------------------------ processes

    def _stop_fleet(self, fleet: Fleet) -> None:
        with self._children_lock:
            child = self._children.pop(fleet.pid, None)
        if child is not None:
            _stop_child(child, self.stop_timeout)
        else:
            _stop_pid(fleet.pid, fleet.port, self.stop_timeout)

    # ------------------------------------------------------------------ records

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def _names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p.stem
            for p in self.directory.glob("*.json")
            if not p.name.startswith(".") and ENDPOINT_NAME.match(p.stem)
        )

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.directory / f".{name}.lock", timeout=self.lock_timeout)
        try:
            lock.acquire()
        except LockTimeout:
            raise EndpointError(
                f"endpoint {name} is busy: another deployment or stop holds {lock.lock_file} "
                f"(waited {self.lock_timeout:g} s)"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _deploying(self, name: str) -> bool:
        """Whether a deployment of `name` holds its lock right now."""
        try:
            with FileLock(self.directory / f".{name}.lock", timeout=0):
                return False
        except LockTimeout:
            return True

    def _read(self, name: str) -> dict[str, Any] | None:
        check_name(name)
        try:
            text = self._path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise EndpointError(f"endpoint record {self._path(name)} is corrupt: {exc}") from None

    def _write(self, record: dict[str, Any]) -> None:
        record["modified"] = _now()
        path = self._path(record["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _remember(
        record: dict[str, Any],
        version: int | str,
        started: str,
        blue: Fleet | None,
        outcome: str,
        reason: str | None,
        notes: list[str],
    ) -> None:
        if outcome != IN_SERVICE and blue is None:
            outcome = FAILED
        entry = {
            "model_version": version,
            "outcome": outcome,
            "started": started,
            "finished": _now(),
            "replaced_version": blue.model_version if blue and outcome == IN_SERVICE else None,
            "reason": "; ".join([*([reason] if reason else []), *notes]) or None,
        }
        record["history"] = [*record.get("history", []), entry][-MAX_HISTORY:]


# --------------------------------------------------------------------------- helpers


def check_name(name: str) -> None:
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        raise ValueError(
            f"endpoint name {name!r} must be 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit (SageMaker's rule)"
        )


def sample_row(model_dir: Path) -> str:
    """One valid CSV row for the model: every feature inside its manifest bounds.

    Numerical features take 0 moved into [min, max] (rounded up to a whole
    number where the feature is integral), categorical features the code 0.
    Without a manifest, zeros as wide as the booster.
    """
    manifest_path = Path(model_dir) / inference.MANIFEST_FILE
    if not manifest_path.is_file():
        import xgboost as xgb

        booster = xgb.Booster(model_file=str(Path(model_dir) / inference.MODEL_FILE))
        return ",".join(["0"] * booster.num_features())
    columns = json.loads(manifest_path.read_text(encoding="utf-8"))["columns"]
    fields = []
    for column in columns:
        if column["kind"] == "categorical":
            fields.append("0" if column.get("categories") else "")
            continue
        lower = -math.inf if column.get("min") is None else float(column["min"])
        upper = math.inf if column.get("max") is None else float(column["max"])
        value = min(max(0.0, lower), upper)
        if column.get("integer"):
            value = float(math.ceil(value)) if math.ceil(value) <= upper else math.floor(value)
        fields.append(repr(value) if not value.is_integer() else str(int(value)))
    return ",".join(fields)


def _post_once(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _stop_child(child: server.LocalEndpoint, timeout: float) -> None:
    """A fleet this process started: SIGTERM (graceful), after `timeout` SIGKILL to its
    whole process group (master and workers), then reaped."""
    process = child.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)  # not reaped yet, so the group id is still this fleet's
        process.wait()


def _stop_pid(pid: int, port: int, timeout: float) -> None:
    """A fleet another process started: signalled only if it still is that server."""
    if not _is_server(pid, port):
        return  # gone, or the pid now belongs to something else
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)
    if _running(pid):  # still there after `timeout`: master and workers at once
        _kill_group(pid)


def _kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of the fleet's process group (it runs in its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _command_line(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:  # no /proc (macOS)
        out = subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except OSError:
        return None
    return out.split() or None


def _is_server(pid: int, port: int) -> bool:
    """Whether `pid` is a boostline.serving.server master bound to `port` (and running)."""
    args = _command_line(pid)
    if not args or not _running(pid):
        return False
    return "boostline.serving.server" in args and _argument(args, "--port") == str(port)


def _argument(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg == flag:
            return args[i + 1]
    return None


def _server_pid_on_port(port: int) -> int | None:
    """The server master started for `port` (the port is unique to one start)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:  # the master leads its own process group; forked workers share its command line
            if os.getpgid(pid) == pid and _is_server(pid, port):
                return pid
        except ProcessLookupError:
            continue
    return None


def _gone(fleet: Fleet) -> bool:
    """The fleet's master process is no more (and nothing answers on its port)."""
    return not _is_server(fleet.pid, fleet.port) and not server.ping(fleet.url, timeout=2.0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:40]


def _shorten(text: str) -> str:
    if len(text) <= _REASON_CHARS:
        return text
    return text[: _REASON_CHARS // 4] + " ... " + text[-(_REASON_CHARS * 3 // 4) :]


def _reason(exc: BaseException) -> str:
    return _shorten(str(exc) or type(exc).__name__)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout)\b.*$", re.MULTILINE)


def _cause(text: str) -> str:
    """The last exception line of a server's start-up failure, else its last line."""
    found = [m.group(0).strip() for m in _EXCEPTION_LINE.finditer(text)]
    if found:
        return _shorten(found[-1])
    rest = [line.strip() for line in text.splitlines() if line.strip()]
    return _shorten(rest[-1]) if rest else "no output"
