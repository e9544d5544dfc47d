"""Options and helpers shared by the CLI's command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.settings import Settings, load_settings

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="twinspect.yaml to read (environment TWINSPECT_* overrides it)."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data folder for runs, database and evidence (default: per-user data dir)."),
]


def settings_from(config: Path | None, data_dir: Path | None = None) -> Settings:
    """Build the settings once for a command; --data-dir wins over file and environment."""
    settings = load_settings(config)
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings
