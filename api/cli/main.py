"""Entry point of the ``twinspect`` command: sub-commands and the error boundary.

Every error a user can cause (bad path, bad file, bad field) ends as one line on
stderr naming the file or field, and exit code 2; so does one the machine causes (a
full disk, a damaged or unreachable database, a folder it may not write).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_exc

from camera.errors import CameraError
from inspection.core.errors import InspectionError
from sync.errors import SyncError

# Each top-level command and the module that defines it. A run imports only the module of the
# command it names (the rest only for --help or a mistake): `twinspect predict` should not pay
# for the web app, the database and the settings it never uses (start-up is part of every run).
GROUPS = {"datasets": "datasets", "models": "models", "config": "config_cmd", "tokens": "tokens", "recipes": "recipes"}
COMMANDS = {
    "train": ("train", "train_cmd"),
    "retrain": ("retrain", "retrain_cmd"),
    "eval": ("models", "eval_cmd"),
    "predict": ("models", "predict_cmd"),
    "export": ("models", "export_cmd"),
    "demo": ("line", "demo_cmd"),
    "serve": ("line", "serve_cmd"),
    "replay": ("line", "replay_cmd"),
    "hub": ("hub", "hub_cmd"),
}


def build_app(only: str | None = None) -> typer.Typer:
    """The ``twinspect`` command with every sub-command, or with ``only`` when that names one."""
    app = typer.Typer(
        help="twinspect: vision inspection of production lines with a synchronized digital twin.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback()(root)
    wanted = [only] if only in GROUPS or only in COMMANDS else [*GROUPS, *COMMANDS]
    for name in wanted:
        if name in GROUPS:
            module = importlib.import_module(f"api.cli.{GROUPS[name]}")
            if name == "models":
                importlib.import_module("api.cli.model_delivery").add_commands(module.app)
            app.add_typer(module.app, name=name)
        else:
            module_name, function = COMMANDS[name]
            app.command(name)(getattr(importlib.import_module(f"api.cli.{module_name}"), function))
    return app


def __getattr__(name: str) -> Any:
    """``app``: the whole command (for tests and tools that import it), built on first use."""
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(name)


def named_command(argv: list[str]) -> str | None:
    """The sub-command an argument list names (its first word), or None (options only: --help, --version)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("twinspect")
        except PackageNotFoundError:  # run from a checkout that was never installed
            number = "unknown (not installed)"
        typer.echo(f"twinspect {number}")
        raise typer.Exit()


def root(
    show_version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """twinspect: vision inspection of production lines with a synchronized digital twin."""


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any worker thread starts.

    Each thread that allocates gets an arena of its own by default (up to 8 per core), and
    numpy frames and crops of changing sizes fragment them: in a 10-minute soak the
    resident set grew 4.7 MB/min with the default and 0.8 MB/min with 2 arenas
    (bench/bench_pipeline.py --only soak). Same as MALLOC_ARENA_MAX=2; no-op off glibc.
    """
    import contextlib
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or "MALLOC_ARENA_MAX" in os.environ:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL(name).mallopt(-8, arenas)  # M_ARENA_MAX


def main() -> None:
    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    command = natural_labels(typer.main.get_command(build_app(named_command(sys.argv[1:]))))
    try:
        code = command(standalone_mode=False)  # a typer.Exit(n) inside a command comes back as n
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except click_exc.ClickException as exc:
        print(f"twinspect: error: {usage_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except (InspectionError, CameraError, SyncError) as exc:
        if os.environ.get("TWINSPECT_TRACEBACK"):
            raise
        print(f"twinspect: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # the environment refused (a full disk, a damaged database): one line, not a traceback
        reason = environment_error(exc)
        if reason is None or os.environ.get("TWINSPECT_TRACEBACK"):
            raise
        print(f"twinspect: error: {reason}", file=sys.stderr)
        sys.exit(2)


def usage_line(exc: click_exc.ClickException) -> str:
    """One line for a command-line mistake (click's own errors), with where to find the right usage."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _no_type(ctx: Any = None) -> None:
    return None


LABELS = {"<int>": "N", "<float>": "NUMBER", "<str>": "TEXT", "<path>": "PATH", "<file>": "FILE", "<dir>": "FOLDER"}


def natural_labels(command: Any) -> Any:
    """Help that reads naturally: 'N', 'TEXT', 'PATH' instead of '<int>', '<str>', '<path>'; flags show no type."""
    ctx = typer._click.Context(command)
    helper = command.get_help_option(ctx)
    if helper is not None:
        helper.metavar = ""
    for param in getattr(command, "params", []):
        if getattr(param, "metavar", None) is not None or not hasattr(param, "display_type"):
            continue
        if isinstance(param, typer.core.TyperArgument):  # its name (FILE, PATHS) says it: no type beside it
            param.display_type_rich = _no_type  # type: ignore[method-assign]
            param.metavar = str(param.name).upper()
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
            continue
        label = str(param.display_type(ctx))
        if label in LABELS:
            param.metavar = LABELS[label]
        elif label.startswith("<") and label.endswith(">") and "|" in label:
            param.metavar = "[" + label[1:-1] + "]"
    for sub in getattr(command, "commands", {}).values():
        natural_labels(sub)
    return command


def environment_error(exc: BaseException) -> str | None:
    """One line for an error the machine caused (disk, database), None for anything else (a bug: traceback)."""
    from sqlalchemy import exc as sa_exc

    from inspection.store.db import translate

    if isinstance(exc, sa_exc.DBAPIError):
        return str(translate(exc, None))
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


if __name__ == "__main__":
    main()
