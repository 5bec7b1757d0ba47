"""The root `visionloop` app: registers each command and turns user errors into one red line."""

from __future__ import annotations

import logging
import sys

import typer

from visionloop.cli import convert as convert_cmds
from visionloop.cli import demo as demo_cmds
from visionloop.cli import evaluate as evaluate_cmds
from visionloop.cli import health as health_cmds
from visionloop.cli import project as project_cmds
from visionloop.cli import version as version_cmds

app = typer.Typer(
    name="visionloop",
    help="The computer-vision loop: import any format, check, version, train, evaluate, serve, relabel.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(project_cmds.init)
app.command("import")(project_cmds.import_)
app.command("export")(project_cmds.export)
app.command("stats")(project_cmds.stats)
app.command("convert")(convert_cmds.convert)
app.command("formats")(convert_cmds.formats)
app.command("health")(health_cmds.health)
app.command("fix")(health_cmds.fix)
app.command("demo")(demo_cmds.demo)
app.command("evaluate")(evaluate_cmds.evaluate)
app.add_typer(version_cmds.app, name="version")


def main() -> None:
    from visionloop.cli.console import err_console
    from visionloop.core.errors import VisionLoopError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(standalone_mode=False)
    except VisionLoopError as e:
        err_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[red]aborted[/]")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # usage errors (typer's click) show themselves and carry an exit code
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
