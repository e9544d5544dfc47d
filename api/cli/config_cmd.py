"""``twinspect config``: check a configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Check and show configuration.", no_args_is_help=True)


@app.command("check")
def check_cmd(file: Annotated[Path, typer.Argument(help="twinspect.yaml to check.")]) -> None:
    """Validate a config file; every bad field is reported by its dotted path."""
    from api.settings import load_settings

    settings = load_settings(file)
    typer.echo(f"{file}: OK (data_dir {settings.data_dir})")


@app.command("show")
def show_cmd(file: Annotated[Path | None, typer.Argument(help="twinspect.yaml (optional).")] = None) -> None:
    """Print the effective configuration (file + environment + defaults) as YAML."""
    import yaml

    from api.settings import load_settings

    typer.echo(yaml.safe_dump(load_settings(file).model_dump(mode="json"), sort_keys=False))
