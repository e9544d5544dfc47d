"""``twinspect datasets``: import real data and render synthetic line frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

app = typer.Typer(help="Import datasets and render synthetic line frames.", no_args_is_help=True)
import_app = typer.Typer(help="Import a dataset from its upstream layout.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("deeppcb")
def import_deeppcb_cmd(
    src: Annotated[Path, typer.Argument(help="DeepPCB folder (holding PCBData/ or PCBData itself).")],
    out: Annotated[Path, typer.Option(help="Output folder of the YOLO dataset.")] = Path("datasets/deeppcb"),
    val_percent: Annotated[int, typer.Option(help="Share of trainval boards (by id) kept for validation.")] = 20,
    background_percent: Annotated[
        int, typer.Option(help="Share of training boards whose defect-free template is added as a background.")
    ] = 10,
    input_kind: Annotated[
        str,
        typer.Option(
            "--input",
            help="'image' (the tested board alone) or 'reference' (board, aligned golden and their "
            "difference as three planes, PNG).",
        ),
    ] = "image",
    seed: Annotated[int, typer.Option(help="Seed of the reference pairs' misregistration jitter.")] = 0,
) -> None:
    """Import DeepPCB into a YOLO dataset with a deterministic validation split and a card."""
    from inspection.ml.datasets.deeppcb import import_deeppcb

    def progress(items):  # type: ignore[no-untyped-def]
        return tqdm(items, desc="checking boards", unit="board", leave=False)

    card = import_deeppcb(
        src,
        out,
        val_percent=val_percent,
        background_percent=background_percent,
        progress=progress,
        input_kind=input_kind,
        seed=seed,
    )
    for split, st in card["splits"].items():
        typer.echo(
            f"{split:5s} {st['images']:5d} images  {st['boxes']:5d} boxes  "
            + " ".join(f"{k}={v}" for k, v in st["boxes_per_class"].items())
        )
    typer.echo(f"source sha256 {card['source_sha256']}")
    typer.echo(f"wrote {out / 'data.yaml'} and {out / 'CARD.md'}")


@app.command("card")
def card_cmd(dataset: Annotated[Path, typer.Argument(help="Dataset folder (with card.json).")]) -> None:
    """Print a dataset's card as JSON."""
    typer.echo(json.dumps(json.loads((dataset / "card.json").read_text()), indent=2))


@app.command("synth-line")
def synth_line_cmd(
    boards: Annotated[Path, typer.Option(help="Boards: a DeepPCB folder (tested + templates) or an image folder.")],
    out: Annotated[Path, typer.Option(help="Output folder of the YOLO dataset.")] = Path("datasets/synthline"),
    train: Annotated[int, typer.Option(help="Training frames.")] = 400,
    val: Annotated[int, typer.Option(help="Validation frames (held-out boards).")] = 100,
    test: Annotated[int, typer.Option(help="Test frames (held-out boards).")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed renders the same frames.")] = 0,
) -> None:
    """Render conveyor frames with whole and partly visible boards, labelled 'board'."""
    from inspection.ml.datasets.synthline import synth_line_dataset

    def progress(items):  # type: ignore[no-untyped-def]
        return tqdm(items, desc="rendering frames", unit="frame", leave=False)

    card = synth_line_dataset(boards, out, train=train, val=val, test=test, seed=seed, progress=progress)
    for split, st in card["splits"].items():
        typer.echo(f"{split:5s} {st['images']:5d} frames  {st['boxes']:5d} boards")
    typer.echo(f"wrote {out / 'data.yaml'} and {out / 'CARD.md'}")
