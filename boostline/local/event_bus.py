"""EventBridge locally: PutEvents entries become events, rendered rules route them.

`envelope` wraps a PutEvents entry as EventBridge delivers it; `route` finds the
rendered stacks' rules whose pattern (moto's EventBridge matcher, the one the
pattern tests use) matches an event, with their target ARNs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from boostline.local.cfn_render import RenderedStack


def envelope(entry: dict[str, Any], *, account: str, region: str) -> dict[str, Any]:
    """A PutEvents entry as the event EventBridge delivers to a rule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": account,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(entry.get("Resources", [])),
        "detail": json.loads(entry.get("Detail") or "{}"),
    }


def route(stacks: Iterable[RenderedStack], event: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(rule name, target ARNs) of every enabled pattern rule that matches the event."""
    from moto.events.models import EventPattern

    matched = []
    for stack in stacks:
        for resource in stack.of_type("AWS::Events::Rule").values():
            props = resource["Properties"]
            pattern = props.get("EventPattern")
            if not pattern or props.get("State", "ENABLED") != "ENABLED":
                continue
            if EventPattern.load(json.dumps(pattern)).matches_event(event):
                targets = [str(t["Arn"]) for t in props.get("Targets", [])]
                matched.append((str(props["Name"]), targets))
    return matched
