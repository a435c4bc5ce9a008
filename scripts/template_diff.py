#!/usr/bin/env python3
"""The synthesized templates of a change against those of its base, as Markdown.

    python scripts/template_diff.py BASE_DIR HEAD_DIR [--base-ref main] [--output FILE]

Each directory holds one folder per stage with that stage's `*.template.json` files, as
scripts/synth_stages.py writes them (`make synth-stages OUT=DIR`). A `FAILED` file in a
directory (the base could not be installed) or in a stage folder (that stage's synth
failed) holds the reason; such a base is reported as failed and nothing of it is compared,
so a broken base never makes every template look new.

Per stage and stack: the resources, parameters, conditions and outputs added, removed or
changed (with the keys that changed), unchanged stacks named as such, and a unified diff
of each changed template. Only reads the two directories; the report goes to stdout or
--output, never into either of them.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAILED = "FAILED"
TEMPLATE_SUFFIX = ".template.json"
SECTIONS = ("Resources", "Parameters", "Conditions", "Mappings", "Rules", "Outputs")
FAILURE_LINES = 40  # of a FAILED file's text shown in the report
DIFF_LINES = 300  # of each changed template's unified diff shown in the report
DIFF_LINE_CHARS = 400  # a pipeline definition is one long JSON string: cut its lines
# GitHub keeps at most 1 MiB of a step's summary; past this the unified diffs are left out.
MAX_REPORT_CHARS = 800_000


@dataclass
class Entry:
    change: str  # added, removed or changed
    section: str
    key: str
    kind: str = ""  # the resource type
    what: list[str] = field(default_factory=list)  # the keys that changed


@dataclass
class StackDiff:
    name: str
    status: str  # added, removed, changed, unchanged
    entries: list[Entry] = field(default_factory=list)
    unified: list[str] = field(default_factory=list)


def _failure(path: Path) -> str | None:
    marker = path / FAILED
    if not marker.is_file():
        return None
    text = marker.read_text(encoding="utf-8", errors="replace").strip()
    return text or "(no reason recorded)"


def _templates(stage_dir: Path) -> dict[str, Path]:
    if not stage_dir.is_dir():
        return {}
    return {
        path.name[: -len(TEMPLATE_SUFFIX)]: path
        for path in sorted(stage_dir.glob("*" + TEMPLATE_SUFFIX))
    }


def _stages(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a CloudFormation template (a JSON object)")
    return data


def _changed_keys(old: Any, new: Any) -> list[str]:
    """The top-level keys (and, for Properties, the property names) whose values differ."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else ["value"]
    keys: list[str] = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if (
            key == "Properties"
            and isinstance(old.get(key), dict)
            and isinstance(new.get(key), dict)
        ):
            keys += [
                f"Properties.{name}"
                for name in sorted(set(old[key]) | set(new[key]))
                if old[key].get(name) != new[key].get(name)
            ]
        else:
            keys.append(key)
    return keys


def _kind(section: str, value: Any) -> str:
    if section == "Resources" and isinstance(value, dict):
        return str(value.get("Type", ""))
    if section == "Parameters" and isinstance(value, dict):
        return str(value.get("Type", ""))
    return ""


def _entries(old: dict[str, Any], new: dict[str, Any]) -> list[Entry]:
    entries: list[Entry] = []
    others = sorted((set(old) | set(new)) - set(SECTIONS))
    for section in SECTIONS:
        before, after = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(before) | set(after)):
            if key not in before:
                entries.append(Entry("added", section, key, _kind(section, after[key])))
            elif key not in after:
                entries.append(Entry("removed", section, key, _kind(section, before[key])))
            elif before[key] != after[key]:
                kind = _kind(section, after[key])
                entries.append(
                    Entry("changed", section, key, kind, _changed_keys(before[key], after[key]))
                )
    for key in others:  # Description, Transform, AWSTemplateFormatVersion, ...
        if old.get(key) != new.get(key):
            change = "added" if key not in old else "removed" if key not in new else "changed"
            entries.append(Entry(change, "Template", key))
    return entries


def _pretty(template: dict[str, Any]) -> list[str]:
    return json.dumps(template, indent=1, sort_keys=True).splitlines()


def diff_stack(name: str, base: Path | None, head: Path | None) -> StackDiff:
    old = _load(base) if base is not None else {}
    new = _load(head) if head is not None else {}
    if base is None:
        status = "added"
    elif head is None:
        status = "removed"
    else:
        status = "unchanged" if old == new else "changed"
    result = StackDiff(name, status)
    if status == "unchanged":
        return result
    result.entries = _entries(old, new)
    result.unified = list(
        difflib.unified_diff(
            _pretty(old) if base is not None else [],
            _pretty(new) if head is not None else [],
            fromfile=f"base/{name}",
            tofile=f"head/{name}",
            lineterm="",
            n=2,
        )
    )
    return result


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _fenced(lines: list[str], language: str = "") -> list[str]:
    fence = "````" if any("```" in line for line in lines) else "```"
    return [fence + language, *lines, fence]


def _tail(text: str) -> list[str]:
    lines = text.splitlines()
    if len(lines) > FAILURE_LINES:
        return [f"... ({len(lines) - FAILURE_LINES} earlier lines)", *lines[-FAILURE_LINES:]]
    return lines


def _cut(line: str) -> str:
    if len(line) <= DIFF_LINE_CHARS:
        return line
    return f"{line[:DIFF_LINE_CHARS]}... ({len(line) - DIFF_LINE_CHARS} more characters)"


def _stack_section(stack: StackDiff, with_diff: bool) -> list[str]:
    counts = {c: sum(e.change == c for e in stack.entries) for c in ("added", "removed", "changed")}
    numbers = ", ".join(f"{n} {c}" for c, n in counts.items() if n)
    out = [f"#### {_code(stack.name)}: {stack.status} ({numbers or 'no entries'})", ""]
    out += [
        "| change | section | logical id | type | what changed |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in stack.entries:
        what = ", ".join(_code(w) for w in e.what)
        kind = _code(e.kind) if e.kind else ""
        out.append(f"| {e.change} | {e.section} | {_code(e.key)} | {kind} | {what} |")
    out.append("")
    if not with_diff:
        return out
    shown = [_cut(line) for line in stack.unified[:DIFF_LINES]]
    if len(stack.unified) > DIFF_LINES:
        shown.append(f"... {len(stack.unified) - DIFF_LINES} more lines (see the artifact)")
    out += ["<details><summary>unified diff</summary>", ""]
    out += _fenced(shown, "diff")
    out += ["", "</details>", ""]
    return out


def render(
    base_root: Path, head_root: Path, base_ref: str = "", max_chars: int = MAX_REPORT_CHARS
) -> tuple[str, bool]:
    """The Markdown report, and whether the base could be compared (False: it is missing
    or its synth failed for at least one stage). A report longer than max_chars leaves the
    unified diffs out, saying so."""
    report, comparable = _render(base_root, head_root, base_ref, with_diff=True)
    if len(report) <= max_chars:
        return report, comparable
    report, comparable = _render(base_root, head_root, base_ref, with_diff=False)
    note = (
        f"\n_The unified diffs are left out: with them this report would exceed {max_chars:,} "
        "characters. They are in the run's artifact (`template-diff/templates.diff`)._\n"
    )
    if len(report) + len(note) > max_chars:
        report = report[: max_chars - len(note)].rsplit("\n", 1)[0] + "\n\n_(cut here)_\n"
    return report + note, comparable


def _render(base_root: Path, head_root: Path, base_ref: str, with_diff: bool) -> tuple[str, bool]:
    title = f"## Template diff against {_code(base_ref) if base_ref else 'the base branch'}"
    lines = [title, ""]
    head_stages = _stages(head_root)
    if not head_stages:
        lines += [
            f"No templates were synthesized for this change ({_code(str(head_root))} is empty)."
        ]
        return "\n".join(lines) + "\n", False
    if not base_root.is_dir():
        lines += [
            f"**No base templates**: {_code(str(base_root))} does not exist, so nothing is "
            "compared (the base was not synthesized).",
        ]
        return "\n".join(lines) + "\n", False
    failure = _failure(base_root)
    if failure is not None:
        lines += [
            "**The base branch could not be synthesized**, so no template is compared:",
            "",
            *_fenced(_tail(failure)),
        ]
        return "\n".join(lines) + "\n", False

    comparable = True
    summary: list[str] = []
    body: list[str] = []
    for stage in sorted(set(head_stages) | set(_stages(base_root))):
        head_dir, base_dir = head_root / stage, base_root / stage
        body += [f"### Stage {_code(stage)}", ""]
        stage_failure = _failure(base_dir) if base_dir.is_dir() else None
        head_failure = _failure(head_dir) if head_dir.is_dir() else None
        if head_failure is not None:
            comparable = False
            summary.append(f"- {_code(stage)}: **this change's synth failed**")
            body += [
                "**This change's synth of the stage failed:**",
                "",
                *_fenced(_tail(head_failure)),
                "",
            ]
            continue
        if stage_failure is not None:
            comparable = False
            summary.append(f"- {_code(stage)}: **the base synth failed**, not compared")
            body += [
                "**The base branch's synth of this stage failed**, so its templates are not "
                "compared:",
                "",
                *_fenced(_tail(stage_failure)),
                "",
            ]
            continue
        if not base_dir.is_dir():
            body += ["The stage is new: the base branch does not have it.", ""]
        elif not head_dir.is_dir():
            body += ["The stage is removed: this change does not have it.", ""]
        base_t, head_t = _templates(base_dir), _templates(head_dir)
        stacks = [
            diff_stack(name, base_t.get(name), head_t.get(name))
            for name in sorted(set(base_t) | set(head_t))
        ]
        changed = [s for s in stacks if s.status != "unchanged"]
        unchanged = [s.name for s in stacks if s.status == "unchanged"]
        by_status = {
            st: [s.name for s in stacks if s.status == st] for st in ("changed", "added", "removed")
        }
        parts = [f"{len(v)} {k}" for k, v in by_status.items() if v]
        parts.append(f"{len(unchanged)} unchanged")
        summary.append(f"- {_code(stage)}: " + ", ".join(parts))
        if not changed:
            body += [f"Every stack is unchanged ({', '.join(_code(n) for n in unchanged)}).", ""]
            continue
        for stack in changed:
            body += _stack_section(stack, with_diff)
        if unchanged:
            body += [f"Unchanged: {', '.join(_code(n) for n in unchanged)}.", ""]
    lines += summary + [""] + body
    return "\n".join(lines).rstrip("\n") + "\n", comparable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="the base's templates, one folder per stage")
    parser.add_argument("head", type=Path, help="this change's templates, one folder per stage")
    parser.add_argument("--base-ref", default="", help="the base branch's name, for the title")
    parser.add_argument("--output", type=Path, help="write the report here (default: stdout)")
    parser.add_argument(
        "--max-chars",
        type=int,
        default=MAX_REPORT_CHARS,
        help="leave the unified diffs out of a longer report (default: %(default)s)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when the base is missing or a synth failed (default: report it, exit 0)",
    )
    args = parser.parse_args(argv)
    for root in (args.base, args.head):
        if args.output is not None and args.output.resolve().is_relative_to(root.resolve()):
            parser.error(f"--output {args.output} is inside {root}, which is compared")
    try:
        report, comparable = render(args.base, args.head, args.base_ref, args.max_chars)
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        print(f"template_diff: {error}", file=sys.stderr)
        return 2
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report, encoding="utf-8")
    else:
        sys.stdout.write(report)
    return 1 if args.strict and not comparable else 0


if __name__ == "__main__":
    sys.exit(main())
