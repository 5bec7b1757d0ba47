"""Rendering stage results for people: every stage returns an object with `to_json()`; `--json` prints that,
otherwise the functions here turn it into lines and tables. Command modules parse, call one stage function and
render here, so the same result reads the same wherever a command produces it.
"""

from __future__ import annotations

from typing import Any

from visionloop.cli.console import console, err_console, print_json


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def render_json_or(result: Any, as_json: bool) -> dict[str, Any] | None:
    """Print `result.to_json()` and return None with `--json`; else return the data for the caller's text."""
    data: dict[str, Any] = result.to_json()
    if as_json:
        print_json(data)
        return None
    return data


def render_assumed(assumed: dict[str, int]) -> None:
    """What a reader read by a rule of the layout rather than by what a file says (`formats.base.assume`)."""
    for what, n in sorted(assumed.items()):
        err_console.print(f"[yellow]assumed[/] {n} × {what} (no file says so; the layout's rule)", soft_wrap=True)


def render_write_report(report: Any, as_json: bool) -> None:
    """A written dataset (export, convert, version export): what was written, converted and dropped."""
    data = render_json_or(report, as_json)
    if data is None:
        return
    anns = ", ".join(plural(v, k, k + ("es" if k == "box" else "s")) for k, v in sorted(data["annotations"].items()))
    anns = anns or "no annotations"
    console.print(f"Wrote {data['format']} to {data['path']}: {data['images']} images, {anns}")
    for what, n in sorted(data["converted"].items()):
        err_console.print(f"[yellow]converted[/] {n} × {what}")
    for what, n in sorted(data["dropped"].items()):
        err_console.print(f"[yellow]dropped[/] {n} × {what}")
    for what, n in sorted((data.get("skipped") or {}).items()):
        err_console.print(f"[yellow]skipped[/] {n} × {what} (seen in the source, not read)", soft_wrap=True)
    render_assumed(data.get("assumed") or {})
    if data.get("fixes"):
        err_console.print("Source checks: " + ", ".join(f"{k} {v}" for k, v in sorted(data["fixes"].items())))
    for r in data.get("quarantined") or ():
        err_console.print(f"[yellow]quarantined[/] (left out) {r['file']}" + (f" ({r['element']})" if r["element"]
                          else "") + f": {r['reason']}", soft_wrap=True)
