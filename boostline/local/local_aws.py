"""S3 and the few AWS calls a job makes, served from the work directory.

`LocalS3` maps the stage's buckets onto `<workdir>/buckets/<purpose>/` and the CDK
asset bucket onto the assembly's asset files, so an S3 URI in the pipeline definition
names a local file. `LocalAwsEndpoint` serves the calls the job scripts themselves make
with boto3: S3 GetObject, HeadObject and ListObjectsV2 (the evaluation's champion
download, the monitors' capture), Secrets Manager GetSecretValue (the preprocessing
salt), SageMaker DescribeModelPackage (from the local registry),
DescribeHyperParameterTuningJob and ListTrainingJobsForHyperParameterTuningJob (from the
tuning jobs the pipeline executor ran, `add_tuning_job`), and CloudWatch PutMetricData
and EventBridge PutEvents, which it records for the caller to read. Each job gets
AWS_ENDPOINT_URL pointing at it. Every other call is refused with a message naming it,
so a script that starts using a new API fails loudly here. `requests` records the IAM
action, resource ARN and condition keys of each call, for checking against the caller's
role; `serving(url)` finds the running endpoint a job's AWS_ENDPOINT_URL names.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from boostline.naming import BUCKET_PURPOSES, Names


class S3Error(ValueError):
    """An S3 URI that names no local bucket or object."""


def split_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise S3Error(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise S3Error(f"{uri!r} names no bucket")
    return bucket, key


@dataclass
class LocalS3:
    buckets: dict[str, Path]  # bucket name -> folder (writable)
    objects: dict[tuple[str, str], Path] = field(default_factory=dict)  # read-only objects

    @classmethod
    def for_stage(
        cls,
        names: Names,
        account: str,
        bucket_dir: Callable[[str], Path],
        assets: dict[tuple[str, str], Path],
    ) -> LocalS3:
        return cls(
            {names.bucket(p, account, names.region): bucket_dir(p) for p in BUCKET_PURPOSES},
            dict(assets),
        )

    def _folder(self, bucket: str) -> Path | None:
        return self.buckets.get(bucket)

    def known(self, bucket: str) -> bool:
        return bucket in self.buckets or any(b == bucket for b, _ in self.objects)

    def get(self, bucket: str, key: str) -> Path | None:
        if (bucket, key) in self.objects:
            return self.objects[(bucket, key)]
        folder = self._folder(bucket)
        if folder is None or not key or key.endswith("/"):
            return None
        path = folder / key
        return path if path.is_file() else None

    def list_prefix(self, uri: str) -> list[tuple[str, Path]]:
        """(key, file) of every object whose key starts with the URI's key, sorted by key."""
        bucket, prefix = split_uri(uri)
        if not self.known(bucket):
            raise S3Error(f"no local bucket {bucket!r} (for {uri})")
        found = [
            (k, p) for (b, k), p in self.objects.items() if b == bucket and k.startswith(prefix)
        ]
        folder = self._folder(bucket)
        if folder is not None and folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file() and not path.name.startswith("."):
                    key = path.relative_to(folder).as_posix()
                    if key.startswith(prefix):
                        found.append((key, path))
        return sorted(found)

    def writable_path(self, uri: str) -> Path:
        bucket, key = split_uri(uri)
        folder = self._folder(bucket)
        if folder is None:
            raise S3Error(f"no writable local bucket {bucket!r} (for {uri})")
        return folder / key

    def upload_dir(self, source: Path, uri: str) -> int:
        """Copy a folder's files under the URI's key prefix (what an S3Output upload does)."""
        target = self.writable_path(uri.rstrip("/"))
        count = 0
        for path in sorted(source.rglob("*")):
            if path.is_file():
                dest = target / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
                count += 1
        return count

    def put_file(self, source: Path, uri: str) -> Path:
        dest = self.writable_path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return dest


def prefix_relative(prefix: str, key: str) -> str:
    """Where an S3Prefix input puts an object: its key after the prefix (or its name)."""
    rel = key[len(prefix) :].lstrip("/")
    return rel or key.rsplit("/", 1)[-1]


@dataclass
class TuningJobRecord:
    """A tuning job as SageMaker describes it, and the summaries of its training jobs."""

    description: dict[str, Any]  # DescribeHyperParameterTuningJob's answer
    training_jobs: list[dict[str, Any]]  # ListTrainingJobsForHyperParameterTuningJob's


_SERVING: weakref.WeakValueDictionary[str, LocalAwsEndpoint] = weakref.WeakValueDictionary()


class LocalAwsEndpoint:
    """A local HTTP endpoint for the AWS calls job scripts make (see the module docstring)."""

    @staticmethod
    def serving(url: str | None) -> LocalAwsEndpoint | None:
        """The endpoint of this process that serves `url` (a job's AWS_ENDPOINT_URL)."""
        return _SERVING.get(url) if url else None

    def __init__(
        self,
        s3: LocalS3,
        secrets: dict[str, str],
        region: str,
        describe_package: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        self.s3 = s3
        self.secrets = secrets  # secret ARN (or name) -> SecretString
        self.region = region
        self.describe_package = describe_package
        self.calls: list[str] = []
        # What the jobs published: PutMetricData requests, PutEvents entries.
        self.metrics: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        # (IAM action, resource ARN, condition keys) of every call, for access checks.
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.tuning_jobs: dict[str, TuningJobRecord] = {}
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                endpoint._object(self, head=True)

            def do_GET(self) -> None:  # noqa: N802
                endpoint._object(self, head=False)

            def do_POST(self) -> None:  # noqa: N802
                endpoint._post(self)

            def do_PUT(self) -> None:  # noqa: N802
                endpoint._refuse(self, f"S3 PUT {self.path}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """What a job's boto3 needs to reach this endpoint (throw-away credentials)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def __enter__(self) -> LocalAwsEndpoint:
        self.thread.start()
        _SERVING[self.url] = self
        return self

    def __exit__(self, *exc: object) -> None:
        _SERVING.pop(self.url, None)
        self.server.shutdown()
        self.server.server_close()

    def add_tuning_job(self, record: TuningJobRecord) -> None:
        name = str(record.description["HyperParameterTuningJobName"])
        with self._lock:
            self.tuning_jobs[name] = record

    # ------------------------------------------------------------ handlers

    def _object(self, request: BaseHTTPRequestHandler, head: bool) -> None:
        parts = urlsplit(request.path)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        query = parse_qs(parts.query)
        if not head and query.get("list-type") == ["2"]:
            return self._list(request, bucket, query)
        self.calls.append(f"s3:{'HeadObject' if head else 'GetObject'} {bucket}/{key}")
        self.requests.append(("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", {}))
        if parts.query and not head:
            return self._refuse(request, f"S3 GET {request.path} (only GetObject is served)")
        path = self.s3.get(bucket, key)
        if path is None:
            return self._xml_error(request, 404, "NoSuchKey", f"{bucket}/{key}", head)
        data = path.read_bytes()
        status, body = 200, data
        ranged = request.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start_text, _, end_text = ranged[6:].partition("-")
            start = int(start_text or 0)
            end = min(int(end_text) if end_text else len(data) - 1, len(data) - 1)
            status, body = 206, data[start : end + 1]
            request.send_response(status)
            request.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            request.send_response(status)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Content-Type", "binary/octet-stream")
        request.send_header("ETag", f'"{len(data):x}-{int(path.stat().st_mtime)}"')
        request.send_header("Last-Modified", formatdate(path.stat().st_mtime, usegmt=True))
        request.send_header("Accept-Ranges", "bytes")
        request.end_headers()
        if not head:
            request.wfile.write(body)

    def _list(self, request: BaseHTTPRequestHandler, bucket: str, query: dict) -> None:
        """ListObjectsV2, in one page (the local buckets are small)."""
        prefix = query.get("prefix", [""])[0]
        self.calls.append(f"s3:ListBucket {bucket}/{prefix}")
        self.requests.append(("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": prefix}))
        if not self.s3.known(bucket):
            return self._xml_error(request, 404, "NoSuchBucket", bucket, False)
        found = self.s3.list_prefix(f"s3://{bucket}/{prefix}")
        contents = "".join(
            f"<Contents><Key>{escape(key)}</Key><Size>{path.stat().st_size}</Size>"
            f"<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>"
            for key, path in found
        )
        data = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
            f"<KeyCount>{len(found)}</KeyCount><MaxKeys>{max(1000, len(found))}</MaxKeys>"
            f"<IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
        ).encode()
        self._send(request, 200, "application/xml", data)

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        payload = request.rfile.read(length) if length else b""
        target = request.headers.get("X-Amz-Target", "")
        body = json.loads(payload or b"{}") if target else {}
        if target.endswith(".PutMetricData") and target.startswith("GraniteServiceVersion"):
            with self._lock:
                self.metrics.append(body)
            namespace = str(body.get("Namespace"))
            self.calls.append(f"cloudwatch:PutMetricData {namespace}")
            self.requests.append(
                ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": namespace})
            )
            return self._json(request, 200, {})
        if target == "AWSEvents.PutEvents":
            entries = list(body.get("Entries", []))
            with self._lock:
                self.events.extend(entries)
            self.calls.append(f"events:PutEvents {len(entries)}")
            bus = f"arn:aws:events:{self.region}:{{account}}:event-bus/default"
            context = {
                "events:source": sorted({str(e.get("Source", "")) for e in entries}),
                "events:detail-type": sorted({str(e.get("DetailType", "")) for e in entries}),
            }
            self.requests.append(("events:PutEvents", bus, context))
            ids = [{"EventId": str(uuid.uuid4())} for _ in entries]
            return self._json(request, 200, {"FailedEntryCount": 0, "Entries": ids})
        if target == "SageMaker.DescribeModelPackage" and self.describe_package is not None:
            name = str(body.get("ModelPackageName", ""))
            self.calls.append(f"sagemaker:DescribeModelPackage {name}")
            self.requests.append(("sagemaker:DescribeModelPackage", name, {}))
            try:
                return self._json(request, 200, self.describe_package(name))
            except LookupError as exc:
                error = {"__type": "ValidationException", "message": str(exc)}
                return self._json(request, 400, error)
        if target in (
            "SageMaker.DescribeHyperParameterTuningJob",
            "SageMaker.ListTrainingJobsForHyperParameterTuningJob",
        ):
            return self._tuning(request, target.split(".", 1)[1], body)
        if target != "secretsmanager.GetSecretValue":
            return self._refuse(request, f"POST {target or request.path}")
        secret_id = body.get("SecretId", "")
        self.calls.append(f"secretsmanager:GetSecretValue {secret_id}")
        if secret_id not in self.secrets:
            body = {"__type": "ResourceNotFoundException", "message": f"no secret {secret_id}"}
            return self._json(request, 400, body)
        return self._json(
            request,
            200,
            {
                "ARN": secret_id,
                "Name": secret_id.rsplit(":", 1)[-1],
                "SecretString": self.secrets[secret_id],
                "VersionId": "local",
            },
        )

    def _tuning(self, request: BaseHTTPRequestHandler, operation: str, body: dict) -> None:
        name = str(body.get("HyperParameterTuningJobName", ""))
        self.calls.append(f"sagemaker:{operation} {name}")
        # SageMaker ARNs carry the name in lower case.
        resource = (
            f"arn:aws:sagemaker:{self.region}:{{account}}:hyper-parameter-tuning-job/{name.lower()}"
        )
        self.requests.append((f"sagemaker:{operation}", resource, {}))
        with self._lock:
            record = self.tuning_jobs.get(name)
        if record is None:
            error = {
                "__type": "ResourceNotFound",
                "message": f"Amazon SageMaker can't find a tuning job with name {name}",
            }
            return self._json(request, 400, error)
        if operation == "DescribeHyperParameterTuningJob":
            return self._json(request, 200, record.description)
        # One page of MaxResults (default 10, as SageMaker's), NextToken the next offset.
        size = max(1, min(int(body.get("MaxResults", 10)), 100))
        start = int(body.get("NextToken") or 0)
        jobs = record.training_jobs[start : start + size]
        page: dict[str, Any] = {"TrainingJobSummaries": jobs}
        if start + size < len(record.training_jobs):
            page["NextToken"] = str(start + size)
        return self._json(request, 200, page)

    def _send(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        content_type: str,
        data: bytes,
        head: bool = False,
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", "0" if head else str(len(data)))
        request.end_headers()
        if not head:
            request.wfile.write(data)

    def _json(self, request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        self._send(request, status, "application/x-amz-json-1.1", json.dumps(body).encode())

    def _xml_error(
        self, request: BaseHTTPRequestHandler, status: int, code: str, what: str, head: bool
    ) -> None:
        data = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>{what}</Message></Error>"
        ).encode()
        self._send(request, status, "application/xml", data, head)

    def _refuse(self, request: BaseHTTPRequestHandler, what: str) -> None:
        self.calls.append(f"refused {what}")
        message = f"the local AWS endpoint does not serve {what}"
        self._xml_error(request, 501, "NotImplemented", message, head=False)
