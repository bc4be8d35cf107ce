"""Renderers: every human view of a plan is built from its canonical JSON (``Plan.to_dict()``).

- ``render_text``: Terraform-like symbols (``+`` create, ``~`` update, ``-/+`` breaking update: links
  rebuilt, ``-`` delete), unchanged parts counted, not printed; colour only when asked (the CLI asks on a
  terminal without ``NO_COLOR``); ends with "Plan: N to add, N to change, N to destroy.".
- ``render_markdown``: for a pull request comment: a summary table first, details folded in
  ``<details>``, bounded length with a note saying what was cut.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_COLORS = {"+": "32", "~": "33", "-": "31", "-/+": "35", "!": "31;1", "bold": "1", "dim": "2"}
_STEP_TEXT = {
    "put_integration": "record the deployed spec of {integration}",
    "remove_integration": "forget {integration} (records stay in both apps)",
    "forget_module": "forget the links of {integration}.{module} ({reason})",
    "initial_sync": "initial sync of {integration}.{module}",
    "backfill": "backfill {integration}.{module}: {fields}",
    "full_resync": "full sync of {integration}.{module} ({reason})",
    "catch_up": "sync {integration}.{module} ({reason})",
}
_MD_ICON = {"create": "➕", "update": "🔄", "delete": "🗑️"}


def symbol(change: Mapping[str, Any]) -> str:
    if change["action"] == "update" and change["category"] == "breaking":
        return "-/+"
    return {"create": "+", "update": "~", "delete": "-", "no-op": " "}[change["action"]]


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{_COLORS.get(code, code)}m{text}\x1b[0m" if color else text


def _value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def _detail_lines(change: Mapping[str, Any]) -> list[str]:
    before, after = change.get("before"), change.get("after")
    if change["action"] == "update":
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
            return [f"{k}: {_value(before.get(k))} -> {_value(after.get(k))}" for k in keys]
        return [f"{_value(before)} -> {_value(after)}"]
    shown = after if change["action"] == "create" else before
    if isinstance(shown, Mapping):
        parts = [f"{k}={_value(v)}" for k, v in shown.items() if v not in (None, [], {}, "")]
        return [", ".join(parts)] if parts else []
    return [] if shown is None else [_value(shown)]


def step_text(step: Mapping[str, Any]) -> str:
    template = _STEP_TEXT.get(step["type"], step["type"] + " {integration}")
    return template.format(integration=step["integration"], module=step.get("module"),
                           fields=", ".join(step.get("fields") or ()), reason=step.get("reason", ""))


def summary_line(plan: Mapping[str, Any]) -> str:
    s = plan["summary"]
    return f"Plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy."


def _unchanged(plan: Mapping[str, Any]) -> str:
    s = plan["summary"]
    parts = []
    if s["unchanged_integrations"]:
        parts.append(f"{s['unchanged_integrations']} integration(s)")
    if s["unchanged_modules"]:
        parts.append(f"{s['unchanged_modules']} module(s)")
    return " and ".join(parts)


def render_text(plan: Mapping[str, Any], *, color: bool = False) -> str:
    changes = [c for c in plan["changes"] if c["action"] != "no-op"]
    out: list[str] = []
    if plan["drift"]:
        out.append(_paint("Drift: the apps changed outside syncform", "bold", color))
        for d in plan["drift"]:
            out.append(f"  {_paint('!', '!', color)} {d['address']}: {d['message']}")
        out.append("")
    if not changes and not plan["steps"]:
        unchanged = _unchanged(plan)
        out.append("No changes. The deployed integrations match the specs" +
                   (f" ({unchanged} unchanged)." if unchanged else "."))
        if plan["drift"]:
            out.append("Drift needs a spec change or a fix in the app; apply cannot repair it.")
        out.extend(f"Note: {n}" for n in plan["notes"])
        return "\n".join(out) + "\n"
    out.append("syncform will perform these actions "
               f"({_paint('+', '+', color)} create, {_paint('~', '~', color)} update, "
               f"{_paint('-/+', '-/+', color)} rebuild links, {_paint('-', '-', color)} destroy):")
    out.append("")
    width = max(len(symbol(c)) for c in changes) if changes else 1
    for c in changes:
        sym = symbol(c)
        flag = "  [destructive]" if c["destructive"] else ""
        out.append(f"  {_paint(sym.rjust(width), sym, color)} {_paint(c['address'], 'bold', color)}"
                   f"  ({c['category']}){_paint(flag, '-', color)}")
        out.append(f"      {_paint('# ' + c['reason'], 'dim', color)}")
        for line in _detail_lines(c):
            out.append(f"      {line}")
    syncs = [s for s in plan["steps"] if s["type"] in ("initial_sync", "backfill", "full_resync", "catch_up")]
    out.append("")
    if syncs:
        out.append("After apply, these syncs run:")
        out.extend(f"  {n}. {step_text(s)}" for n, s in enumerate(syncs, 1))
    else:
        out.append("No sync runs follow.")
    unchanged = _unchanged(plan)
    if unchanged:
        out.append(f"Unchanged: {unchanged} (not shown).")
    out.extend(f"Note: {n}" for n in plan["notes"])
    out.append("")
    out.append(_paint(summary_line(plan), "bold", color))
    return "\n".join(out) + "\n"


def render_markdown(plan: Mapping[str, Any], *, max_chars: int = 60000, max_rows: int = 50) -> str:
    """A pull request comment: headline, summary table, folded details; never longer than ``max_chars``
    (GitHub refuses comments over 65,536 characters)."""
    changes = [c for c in plan["changes"] if c["action"] != "no-op"]
    s = plan["summary"]
    head = [f"### syncform plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy"]
    destructive = [c for c in changes if c["destructive"]]
    breaking = [c for c in changes if c["category"] == "breaking" and c["action"] == "update"]
    flags = []
    if destructive:
        flags.append(f"**{len(destructive)} destructive**")
    if breaking:
        flags.append(f"**{len(breaking)} breaking** (links rebuilt, full sync)")
    if plan["drift"]:
        flags.append(f"**{len(plan['drift'])} drift**")
    if flags:
        head.append("")
        head.append("⚠️ " + ", ".join(flags))
    head.append("")
    if not changes and not plan["steps"]:
        unchanged = _unchanged(plan)
        head.append("No changes." + (f" {unchanged} unchanged." if unchanged else ""))
    else:
        head.append("| | address | action | category | why |")
        head.append("|---|---|---|---|---|")
        for c in changes[:max_rows]:
            icon = "⚠️" if c["destructive"] else _MD_ICON.get(c["action"], "")
            head.append(f"| {icon} | `{c['address']}` | {c['action']} | {c['category']} | {_md_cell(c['reason'])} |")
        if len(changes) > max_rows:
            head.append(f"| | … and {len(changes) - max_rows} more | | | |")
        unchanged = _unchanged(plan)
        if unchanged:
            head.append("")
            head.append(f"Unchanged: {unchanged}.")
    syncs = [x for x in plan["steps"] if x["type"] in ("initial_sync", "backfill", "full_resync", "catch_up")]
    if syncs:
        head.append("")
        head.append("Syncs after apply: " + "; ".join(step_text(x) for x in syncs[:20])
                    + (f"; … and {len(syncs) - 20} more" if len(syncs) > 20 else ""))
    for d in plan["drift"][:20]:
        head.append(f"- ❗ `{d['address']}`: {_md_cell(d['message'])}")
    for n in plan["notes"]:
        head.append(f"- {_md_cell(n)}")
    footer = [f"", f"<sub>plan {plan['id']} · state serial {plan['serial']} · specs {plan['spec_hash'][:19]}</sub>"]
    text = "\n".join(head)
    if changes:
        body = render_text(plan, color=False)
        opening = f"\n\n<details><summary>Details ({len(changes)} changes)</summary>\n\n```diff\n"
        closing = "```\n\n</details>"
        room = max_chars - len(text) - len(opening) - len(closing) - len("\n".join(footer)) - 200
        if len(body) > room:
            cut = body[:max(room, 0)]
            cut = cut[:cut.rfind("\n") + 1] if "\n" in cut else ""
            omitted = body[len(cut):].count("\n")
            body = cut + f"… {omitted} more lines cut to fit a comment: run `syncform plan` for the whole plan\n"
        text += opening + _diff_prefix(body) + closing
    text += "\n".join(footer) + "\n"
    return text


def _diff_prefix(body: str) -> str:
    """GitHub's ``diff`` highlighting keys on the first column: put each change's symbol there
    (``+`` create, ``-`` destroy, ``!`` update or rebuild) and indent everything else."""
    lines = []
    for line in body.splitlines():
        stripped = line.lstrip()
        head, _, rest = stripped.partition(" ")
        if line.startswith("  ") and head in ("+", "-", "~", "-/+") and rest:
            lines.append({"+": "+", "-": "-"}.get(head, "!") + " " + (rest if head != "-/+" else "-/+ " + rest))
        else:
            lines.append("  " + line if line else line)
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_preview(reports: list[Mapping[str, Any]]) -> str:
    """The sync engine's dry run, per integration and module: what the syncs after apply would write."""
    out = ["Record-level preview (dry run: nothing written):"]
    if not reports:
        out.append("  no syncs follow this plan.")
    for r in reports:
        kind = "full pass" if r.get("full") else "changes since the last sync"
        out.append(f"  {r.get('integration')} ({kind}):")
        for m in r.get("modules", ()):
            counts = m.get("counts", {})
            parts = []
            for direction, c in counts.items():
                nonzero = ", ".join(f"{v} {k}" for k, v in c.items() if v)
                if nonzero:
                    parts.append(f"{direction}: {nonzero}")
            status = "" if m.get("status") in (None, "ok") else f" [{m.get('status')}: {m.get('message', '')}]"
            out.append(f"    {m.get('module')}: {'; '.join(parts) or 'no record changes'}{status}")
    return "\n".join(out) + "\n"
