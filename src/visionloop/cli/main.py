"""The root `visionloop` app: registers each command and turns user errors into one red line."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Annotated

import typer

from visionloop.cli import batch as batch_cmds
from visionloop.cli import blur as blur_cmds
from visionloop.cli import concepts as concepts_cmds
from visionloop.cli import convert as convert_cmds
from visionloop.cli import demo as demo_cmds
from visionloop.cli import evaluate as evaluate_cmds
from visionloop.cli import gallery as gallery_cmds
from visionloop.cli import geo as geo_cmds
from visionloop.cli import health as health_cmds
from visionloop.cli import keys as keys_cmds
from visionloop.cli import label as label_cmds
from visionloop.cli import label_errors as label_errors_cmds
from visionloop.cli import loop as loop_cmds
from visionloop.cli import model as model_cmds
from visionloop.cli import predictions as predictions_cmds
from visionloop.cli import project as project_cmds
from visionloop.cli import select as select_cmds
from visionloop.cli import serve as serve_cmds
from visionloop.cli import similar as similar_cmds
from visionloop.cli import train as train_cmds
from visionloop.cli import version as version_cmds

app = typer.Typer(
    name="visionloop",
    help="The computer-vision loop: import any format, check, version, train, evaluate, serve, relabel.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        import visionloop

        typer.echo(f"visionloop {visionloop.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print visionloop's version and exit.")] = False) -> None:
    """The computer-vision loop: import any format, check, version, train, evaluate, serve, relabel."""


app.command("init")(project_cmds.init)
app.command("import")(project_cmds.import_)
app.command("export")(project_cmds.export)
app.command("stats")(project_cmds.stats)
app.command("gc")(project_cmds.gc)
app.command("convert")(convert_cmds.convert)
app.command("formats")(convert_cmds.formats)
app.command("health")(health_cmds.health)
app.command("fix")(health_cmds.fix)
app.add_typer(batch_cmds.app, name="batch")
app.command("undo", help="Undo an import or fix batch (same as `batch undo`).")(batch_cmds.undo)
app.command("demo")(demo_cmds.demo)
app.command("evaluate")(evaluate_cmds.evaluate)
app.command("errors")(evaluate_cmds.errors)
app.add_typer(version_cmds.app, name="version")
app.command("train")(train_cmds.train)
app.add_typer(model_cmds.app, name="model")
app.add_typer(gallery_cmds.app, name="gallery")
app.add_typer(blur_cmds.app, name="blur")
app.command("predict")(model_cmds.predict)
app.command("serve")(serve_cmds.serve)
app.command("ui")(serve_cmds.ui)
app.add_typer(keys_cmds.app, name="keys")
app.add_typer(concepts_cmds.app, name="concepts")
app.add_typer(predictions_cmds.app, name="predictions")
app.command("select")(select_cmds.select)
app.add_typer(label_cmds.app, name="label")
app.command("label-errors")(label_errors_cmds.label_errors)
app.add_typer(loop_cmds.app, name="loop")
app.command("embed")(similar_cmds.embed)
app.command("similar")(similar_cmds.similar)
app.command("search")(similar_cmds.search)
app.add_typer(geo_cmds.app, name="geo")
app.command("map", help="Write a self-contained HTML map of the photos' GPS tracks (same as `geo map`).")(geo_cmds.map_)
app.command("sfm", help="Structure from motion on the project's photos (same as `geo sfm`).")(geo_cmds.sfm)
app.command("mapfeatures", help="Place detected objects (signs, lights) on the map from the reconstruction "
                                "(same as `geo mapfeatures`).")(geo_cmds.mapfeatures)


#: what an interrupted command leaves behind, by command (the first one or two words after `visionloop`)
INTERRUPTED = {
    "import": "the import was stopped; the project is unchanged (an import lands whole or not at all)",
    "export": "the export was stopped; nothing was written (an output it would replace is unchanged)",
    "convert": "the conversion was stopped; nothing was written (an output it would replace is unchanged)",
    "version export": "the export was stopped; nothing was written (an output it would replace is unchanged)",
    "version create": "version generation was stopped; the images generated so far are kept: run the same "
                      "command again to resume",
    "fix": "the fix was stopped; the project is unchanged",
    "select": "the selection was stopped; no image was tagged",
    "label-errors": "label-error scoring was stopped; no image was tagged (with --folds, the fold tags, versions and "
                    "models finished so far are kept)",
    "serve": "the server stopped (requests in flight were answered first)",
    "ui": "the web UI stopped",
    "mapfeatures": "map feature placement was stopped; nothing was written (an output it would replace is unchanged)",
}

#: the signal that stopped the command (SIGINT: Ctrl-C, SIGTERM: `kill`), set by `_on_signal`
_received: list[int] = []


def _on_signal(signum: int, frame: object) -> None:
    """SIGINT and SIGTERM in the main process: stop as Ctrl-C does (KeyboardInterrupt unwinds every
    `finally`, so partial outputs are removed and transactions rolled back). A forked worker that inherited
    this handler dies of the signal as it would have without it."""
    if os.getpid() != _MAIN_PID:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _received.append(signum)
    raise KeyboardInterrupt


_MAIN_PID = os.getpid()


def _command(argv: list[str]) -> str:
    words = [a for a in argv if not a.startswith("-")][:2]
    return " ".join(words) if words[:1] == ["version"] else (words[0] if words else "")


def main() -> None:
    """Exit codes: 0 done; 1 a user error (one line on stderr); 2 a usage error; 130 interrupted by
    Ctrl-C (SIGINT), 143 stopped by SIGTERM, each with one line saying what was kept."""
    global _MAIN_PID
    from visionloop.cli import console as console_mod
    from visionloop.cli.console import err_console
    from visionloop.core.errors import VisionLoopError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _MAIN_PID = os.getpid()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # a shell's background job ignores SIGINT: keep that
            signal.signal(signum, _on_signal)
    try:
        rc = app(standalone_mode=False)  # Typer turns KeyboardInterrupt into a returned 130
        interrupted = bool(_received) or rc == 130
    except VisionLoopError as e:
        err_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        interrupted, rc = True, 130
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # usage errors (typer's click) show themselves and carry an exit code
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(e.exit_code)
        raise
    if interrupted:
        signum = _received[0] if _received else signal.SIGINT
        what = console_mod.interrupt_note or INTERRUPTED.get(_command(sys.argv[1:]), "stopped")
        how = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
        err_console.print(f"[red]{how}:[/] {what}", highlight=False, soft_wrap=True)
        sys.exit(128 + signum)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
