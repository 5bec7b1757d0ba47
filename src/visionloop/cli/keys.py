"""visionloop keys create | list | revoke: API keys of the HTTP server (stored hashed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt

app = typer.Typer(help="API keys of `visionloop serve`: scopes predict, upload, admin.", no_args_is_help=True)


@app.command("create")
def create(
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="predict | upload | admin (repeatable).")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute (default: the server's).")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print its token — the only time it is shown."""
    from visionloop.store import Store, keys

    with Store.open(project) as store:
        info, token = keys.create(store, scopes=scope, name=name, rate_limit=rate_limit)
    if as_json:
        print_json({**info.to_json(), "token": token})
        return
    console.print(token, highlight=False)
    err_console.print(f"key {info.prefix} ({', '.join(info.scopes)}) created; the token above is not stored, "
                      "keep it now. Send it as the X-API-Key header.", highlight=False, soft_wrap=True)


@app.command("list")
def list_(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every key: prefix, scopes, rate limit, last use, revoked or not (never the token)."""
    from visionloop.store import Store, keys

    with Store.open(project) as store:
        infos = keys.list_all(store)
    if as_json:
        print_json([i.to_json() for i in infos])
        return
    table = Table("prefix", "name", "scopes", "rate limit", "created", "last used", "state")
    for i in infos:
        table.add_row(i.prefix, i.name, ", ".join(i.scopes), str(i.rate_limit or "default"), i.created_at[:19],
                      (i.last_used_at or "")[:19], "active" if i.active else f"revoked {i.revoked_at[:19]}")
    console.print(table)


@app.command("revoke")
def revoke(key: Annotated[str, typer.Argument(help="The key's prefix (from `keys list`) or id.")],
           project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Revoke a key (a running server refuses it within its key cache time, 2 s by default)."""
    from visionloop.store import Store, keys

    with Store.open(project) as store:
        info = keys.revoke(store, key)
    if as_json:
        print_json(info.to_json())
        return
    console.print(f"key {info.prefix} revoked", highlight=False)
