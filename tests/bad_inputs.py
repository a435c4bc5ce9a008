"""Malformed requests inference.py must answer with a 4xx and a JSON error, on every server.

The cases of the bad-input tests in tests/training_scripts/test_inference.py (CSV values,
CSV bodies, errors deep in a large body, JSON values, JSON bodies, explain options,
unsupported types) and tests/boostline/serving/test_server.py, as module-level lists, and
`bad_requests()`, which turns them into concrete requests for one loan book. Import it as
`bad_inputs` (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CSV, JSON, JSONL = "text/csv", "application/json", "application/jsonlines"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's limit
DEEP_ROW = 1235  # a row deep in a body over 16 KB (inference.py's pyarrow reader)
EXTRA = "__extra__"  # placeholder in a message: the feature count plus one
FEATURES = "__features__"  # placeholder: the feature count

# (row, column, value, part of the message): one field of an encoded CSV row replaced
CSV_VALUE_CASES: list[tuple[int, str, str, str]] = [
    (2, "fico_score", "abc", "'abc' is not a number"),
    (3, "dti", "nan", "not a finite number"),
    (1, "dti", "NaN", "not a finite number"),
    (2, "annual_income", "inf", "not a finite number"),
    (2, "annual_income", "-Infinity", "not a finite number"),
    (3, "revol_bal", "1e400", "not a finite number"),
    (2, "fico_score", "900", "900 is above the maximum 850"),
    (3, "loan_amount", "100", "100 is below the minimum 500"),
    (2, "open_acc", "3.5", "3.5 is not a whole number"),
    (1, "fico_score", "", "is required but missing"),
    (2, "grade", "7", "code 7 is not a category code (0 to 6"),
    (2, "term", "-1", "code -1 is not a category code"),
    (3, "grade", "1.5", "code 1.5 is not a category code"),
    (2, "fico_score", "1_000", "'1_000' is not a number"),
    (2, "fico_score", "0x10", "'0x10' is not a number"),
    (3, "fico_score", "７００", "is not a number"),
]

# (name, body or a shape built from three good rows, status, part of the message)
CSV_BODY_CASES: list[tuple[str, bytes | str, int, str]] = [
    ("empty", b"", 400, "empty request body"),
    ("blank lines", b"\n\n", 400, "empty request body"),
    ("three fields", b"1,2,3", 400, f"row 1 has 3 fields, expected {FEATURES} features"),
    ("extra field", "extra field on row 2", 400, f"row 2 has {EXTRA} fields"),
    ("blank row", "blank line as row 2", 400, "row 2 is empty"),
    ("not utf-8", b"\xff\xfe1,2", 400, "not valid UTF-8"),
    ("over 6 MB", b"x" * (MAX_PAYLOAD_BYTES + 1), 413, "exceeds"),
]

# (name, how row DEEP_ROW of a 1500-row body is spoiled, part of the message; {0} and {1}
# are the first two feature names)
DEEP_CSV_CASES: list[tuple[str, Callable[[str], str], str]] = [
    (
        "extra field",
        lambda line: line.replace(",", ",abc,", 1),
        f"row {DEEP_ROW} has {EXTRA} fields",
    ),
    ("blank line", lambda line: "", f"row {DEEP_ROW} is empty"),
    ("nan", lambda line: "nan" + line[line.index(",") :], f"row {DEEP_ROW}, field {{0!r}}"),
    ("non-ascii", lambda line: line.replace(",", ",\xe9", 1), f"row {DEEP_ROW}, field {{1!r}}"),
]

# (row, field, value or KeyError to drop it, part of the message): one raw JSON application
JSON_VALUE_CASES: list[tuple[int, str, Any, str]] = [
    (2, "fico_score", KeyError, "is required but missing"),
    (3, "fico_score", None, "is required but missing"),
    (1, "grade", KeyError, "is required but missing"),
    (2, "grade", "", "is required but missing"),
    (2, "fico_score", 900, "900 is above the maximum 850"),
    (2, "loan_amount", "100", "100 is below the minimum 500"),
    (3, "open_acc", 2.5, "2.5 is not a whole number"),
    (2, "dti", "abc", "'abc' is not a number"),
    (2, "dti", "nan", "not a finite number"),
    (2, "dti", True, "expected a number, got bool"),
    (2, "dti", [1], "expected a number, got list"),
    (2, "grade", 3, "expected a category name (a string), got int"),
    (2, "annual_income", float("inf"), "not a finite number"),
    (1, "annual_income", float("nan"), "not a finite number"),
    (2, "annual_income", 10**400, "not a finite number"),
]

# (body, content type, status, part of the message)
JSON_BODY_CASES: list[tuple[bytes, str, int, str]] = [
    (b"{not json", JSON, 400, "not valid JSON"),
    (b"{", JSON, 400, "not valid JSON"),
    (b"[]", JSON, 400, "no applications"),
    (b'{"instances": []}', JSON, 400, "no applications"),
    (b'{"instances": {"a": 1}}', JSON, 400, "'instances' must be a list"),
    (b'[{"fico_score": 700}, 5]', JSON, 400, "row 2 must be a JSON object"),
    (b'"hello"', JSON, 400, "row 1 must be a JSON object"),
    (b'{"a": "\xff"}', JSON, 400, "not valid UTF-8"),
    (b'{"a": 1}\n\n{"a": 2}', JSONL, 400, "row 2 is empty"),
    (b'{"a": 1}\n{"a": ', JSONL, 400, "row 2 is not valid JSON"),
]

# (custom attributes header, explain options in a JSON body, part of the message)
EXPLAIN_OPTION_CASES: list[tuple[str | None, dict | None, str]] = [
    ("explain=maybe", None, "'explain' must be true or false"),
    ("explain=true;top_k=0", None, "'top_k' must be at least 1"),
    ("explain=true;top_k=two", None, "'top_k' must be a whole number"),
    (None, {"explain": "perhaps"}, "'explain' must be true or false"),
    (None, {"explain": True, "top_k": 1.5}, "'top_k' must be a whole number"),
]

# (content type, accept, status, part of the message), with a good CSV row as the body
TYPE_CASES: list[tuple[str, str, int, str]] = [
    ("text/plain", CSV, 415, "not supported"),
    ("application/xml", CSV, 415, "not supported"),
    ("text/csv; charset=latin-1", CSV, 415, "charset"),
    (CSV, "text/html", 406, "cannot answer"),
    (CSV, "image/png", 406, "cannot answer"),
]


@dataclass(frozen=True)
class BadRequest:
    name: str
    body: bytes
    content_type: str | None
    accept: str | None
    status: int
    message: str  # part of the error text
    custom_attributes: str | None = None

    @property
    def text_safe(self) -> bool:
        """Valid UTF-8: a server that decodes the body hands inference.py the same request."""
        try:
            self.body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


def _fill(message: str, names: list[str]) -> str:
    message = message.replace(FEATURES, str(len(names))).replace(EXTRA, str(len(names) + 1))
    return message.format(*names) if "{" in message else message


def csv_body(
    features: list[str], names: list[str], row: int, column: str, value: str, rows: int
) -> bytes:
    lines = [line.split(",") for line in features[:rows]]
    lines[row - 1][names.index(column)] = value
    return "\n".join(",".join(fields) for fields in lines).encode()


def json_body(raw: list[dict], row: int, field: str, value: Any) -> bytes:
    instances = [dict(r) for r in raw[:3]]
    if value is KeyError:
        del instances[row - 1][field]
    else:
        instances[row - 1][field] = value
    return json.dumps({"instances": instances}).encode()


def bad_requests(features: list[str], raw: list[dict], names: list[str]) -> list[BadRequest]:
    """Every case above as a request: `features` are encoded CSV rows without the label (at
    least 400), `raw` raw applications (at least 3), `names` the manifest's column names."""
    if len(features) < 400 or len(raw) < 3:
        raise ValueError("bad_requests needs at least 400 encoded rows and 3 raw applications")
    cases: list[BadRequest] = []
    for row, column, value, message in CSV_VALUE_CASES:
        for rows in (3, 400):  # the small-body and the pyarrow parser
            body = csv_body(features, names, row, column, value, rows)
            name = f"csv {column}={value!r} row {row} of {rows}"
            cases.append(BadRequest(name, body, CSV, CSV, 400, message))
    good = [line.encode() for line in features[:3]]
    for name, body, status, message in CSV_BODY_CASES:
        if body == "extra field on row 2":
            body = b"\n".join([good[0], good[1] + b",1", good[2]])
        elif body == "blank line as row 2":
            body = b"\n".join([good[0], b"", good[1]])
        assert isinstance(body, bytes)
        cases.append(BadRequest(f"csv {name}", body, CSV, CSV, status, _fill(message, names)))
    large = (features * (1500 // len(features) + 1))[:1500]
    for name, spoil, message in DEEP_CSV_CASES:
        lines = list(large)
        lines[DEEP_ROW - 1] = spoil(lines[DEEP_ROW - 1])
        body = "\n".join(lines).encode()
        cases.append(BadRequest(f"deep csv {name}", body, CSV, CSV, 400, _fill(message, names)))
    for row, field, value, message in JSON_VALUE_CASES:
        body = json_body(raw, row, field, value)
        cases.append(
            BadRequest(f"json {field}={value!r:.20} row {row}", body, JSON, JSON, 400, message)
        )
    for body, content_type, status, message in JSON_BODY_CASES:
        cases.append(
            BadRequest(f"json body {body[:20]!r}", body, content_type, JSON, status, message)
        )
    for attributes, options, message in EXPLAIN_OPTION_CASES:
        if options is None:
            request = BadRequest(
                f"explain {attributes}", good[0], CSV, JSON, 400, message, attributes
            )
        else:
            body = json.dumps({"instances": raw[:1], **options}).encode()
            request = BadRequest(f"explain {options}", body, JSON, JSON, 400, message)
        cases.append(request)
    for content_type, accept, status, message in TYPE_CASES:
        name = f"type {content_type} accept {accept}"
        cases.append(BadRequest(name, good[0], content_type, accept, status, message))
    return cases
