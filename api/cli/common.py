"""Options and helpers shared by the CLI's command modules."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from api.settings import Settings

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
    from api.settings import load_settings  # here, not at the top: commands that need no settings start faster

    settings = load_settings(config)
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings


T = TypeVar("T")


def progress(label: str, unit: str) -> Callable[[Iterable[T]], Iterator[T]]:
    """Wrap a loop over batches (lists): stderr says how many ``unit`` are done, at each tenth of the way."""

    def wrap(batches: Iterable[T]) -> Iterator[T]:
        items = list(batches)
        total = sum(len(b) if isinstance(b, Sized) else 1 for b in items)
        done, step = 0, -1
        for batch in items:
            yield batch
            done += len(batch) if isinstance(batch, Sized) else 1
            if total and (10 * done) // total != step:
                step = (10 * done) // total
                print(f"{label}: {done} of {total} {unit} ({100 * done // total}%)", file=sys.stderr, flush=True)

    return wrap
