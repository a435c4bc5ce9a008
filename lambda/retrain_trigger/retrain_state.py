"""The retrain state item in DynamoDB: pending work, the last started run, the last failure.

One item per pipeline, key ``id = "retrain-state#<pipeline>"`` in a table whose
partition key is ``id`` (string) — the same key schema as the Powertools
idempotency table, so one table can hold both. Writes are conditional on the
item's ``version`` (optimistic locking): two invocations deciding at the same
time cannot both start a run; the loser reads again and decides again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError
from decide import State

KEY_ATTR = "id"


class StateConflict(Exception):
    """Another invocation changed the state item since it was read."""


def _num(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name, {}).get("N")
    return float(value) if value is not None else None


def _text(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def from_item(item: dict[str, Any]) -> State:
    drift = tuple(
        str(entry["S"]) for entry in item.get("pending_drift", {}).get("L", []) if "S" in entry
    )
    return State(
        pending_files=int(_num(item, "pending_files") or 0),
        pending_bytes=int(_num(item, "pending_bytes") or 0),
        pending_drift=drift,
        pending_since=_num(item, "pending_since"),
        last_started_at=_num(item, "last_started_at"),
        last_event_id=_text(item, "last_event_id"),
        last_reason=_text(item, "last_reason"),
        last_execution_arn=_text(item, "last_execution_arn"),
        last_failed_execution_arn=_text(item, "last_failed_execution_arn"),
        last_failure_reason=_text(item, "last_failure_reason"),
        last_failed_at=_num(item, "last_failed_at"),
        version=int(_num(item, "version") or 0),
    )


def to_item(key: str, state: State) -> dict[str, Any]:
    item: dict[str, Any] = {
        KEY_ATTR: {"S": key},
        "pending_files": {"N": str(state.pending_files)},
        "pending_bytes": {"N": str(state.pending_bytes)},
        "pending_drift": {"L": [{"S": name} for name in state.pending_drift]},
        "last_event_id": {"S": state.last_event_id},
        "last_reason": {"S": state.last_reason},
        "last_execution_arn": {"S": state.last_execution_arn},
        "version": {"N": str(state.version)},
    }
    if state.pending_since is not None:
        item["pending_since"] = {"N": repr(state.pending_since)}
    if state.last_started_at is not None:
        item["last_started_at"] = {"N": repr(state.last_started_at)}
    if state.last_failed_execution_arn:
        item["last_failed_execution_arn"] = {"S": state.last_failed_execution_arn}
        item["last_failure_reason"] = {"S": state.last_failure_reason}
    if state.last_failed_at is not None:
        item["last_failed_at"] = {"N": repr(state.last_failed_at)}
    return item


def _conflict(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class StateStore:
    def __init__(self, client: Any, table_name: str, pipeline_name: str):
        self.client = client
        self.table_name = table_name
        self.key = f"retrain-state#{pipeline_name}"

    def load(self) -> State:
        response = self.client.get_item(
            TableName=self.table_name, Key={KEY_ATTR: {"S": self.key}}, ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(item) if item else State()

    def save(self, state: State, expected_version: int) -> State:
        """Write `state` if the item is still at `expected_version`; return it as written."""
        written = replace(state, version=expected_version + 1)
        if expected_version == 0:
            condition: dict[str, Any] = {"ConditionExpression": f"attribute_not_exists({KEY_ATTR})"}
        else:
            condition = {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
            }
        try:
            self.client.put_item(
                TableName=self.table_name, Item=to_item(self.key, written), **condition
            )
        except ClientError as error:
            if _conflict(error):
                raise StateConflict(self.key) from error
            raise
        return written

    def record_execution(self, event_id: str, execution_arn: str) -> bool:
        """Note the execution a start created, if the item still records that start."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={KEY_ATTR: {"S": self.key}},
                UpdateExpression="SET last_execution_arn = :arn, #v = #v + :one",
                ConditionExpression="last_event_id = :event",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={
                    ":arn": {"S": execution_arn},
                    ":event": {"S": event_id},
                    ":one": {"N": "1"},
                },
            )
        except ClientError as error:
            if _conflict(error):
                return False
            raise
        return True
