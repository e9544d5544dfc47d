"""``twinspect retrain --line L``: QA's reviewed boards + the base dataset -> train, eval, register, gate, shadow."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import ConfigOption, DataDirOption
from api.cli.model_delivery import LineOption, WeightsDirOption, open_desk, who


def retrain_cmd(
    line: LineOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan with its counts; train nothing.")] = False,
    epochs: Annotated[int, typer.Option(help="Epochs of fine-tuning from the active weights.")] = 20,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 16,
    imgsz: Annotated[
        int | None, typer.Option(help="Training image size, a multiple of 32 (default: the active model's card).")
    ] = None,
    device: Annotated[str, typer.Option(help="'cpu' or a CUDA device index.")] = "cpu",
    data: Annotated[
        Path | None, typer.Option(help="Base data YAML (default: the active model's training data).")
    ] = None,
    weights_dir: WeightsDirOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Retrain the line's defect model from QA's reviewed inspections; each step prints what it did."""
    from api.runtime import open_storage
    from inspection.core.errors import ModelError
    from inspection.inference.cards import read_card
    from inspection.ml.retrain import plan_retrain

    t0 = time.monotonic()
    if imgsz is not None and (imgsz < 32 or imgsz % 32):
        raise ModelError(f"--imgsz: must be a multiple of 32 and at least 32, got {imgsz}")
    desk, settings = open_desk(config, data_dir, line, weights_dir)
    active = desk.active()
    if active is None:
        raise ModelError(f"line {desk.line_id!r}: no active model yet (it has not run, or: twinspect models activate)")
    store, _ = open_storage(settings, desk.states.engine)
    plan = plan_retrain(
        store,
        desk.line_id,
        desk.folder(active),
        settings.data_dir / "datasets",
        epochs,
        data,
        goldens=settings.goldens_dir,
    )
    for text in plan.lines():
        typer.echo(text)
    size = imgsz or int(read_card(plan.resume_from.parent).get("imgsz", 640))
    typer.echo(f"  image size {size}, batch {batch}, device {device}")
    if dry_run:
        typer.echo(f"dry run: stopped before training ({time.monotonic() - t0:.2f} s)")
        return
    _run(plan, store, desk, settings, batch, device, size)


def _run(plan, store, desk, settings, batch: int, device: str, imgsz: int) -> None:  # type: ignore[no-untyped-def]
    """The steps after the plan; each line ends with the step's wall time (tests/api/test_retrain_full.py runs them)."""
    from api.model_gate import line_gate
    from inspection.inference.cards import read_card
    from inspection.ml.registry import register_run
    from inspection.ml.retrain import write_dataset
    from inspection.ml.training import TrainRequest, train
    from inspection.store import Version

    clock = [time.monotonic()]

    def took() -> str:
        """The wall time since the last step ended."""
        now = time.monotonic()
        seconds, clock[0] = now - clock[0], now
        return f"({seconds:.1f} s)"

    names = tuple(read_card(plan.resume_from.parent)["class_names"])
    card = write_dataset(plan, store, names)
    typer.echo(f"step 1: dataset {plan.out}: {card['splits']} {took()}")
    req = TrainRequest(
        task="defect",
        data=plan.out / "data.yaml",
        epochs=plan.epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        model=str(plan.resume_from),
        name=plan.out.name,
        runs_dir=settings.runs_dir,
        warmup_epochs=0.0,
    )
    run = train(req)
    typer.echo(f"step 2: trained {run} {took()}")
    entry = register_run(run, task="defect", registry=desk.parts.registry, data=plan.out / "data.yaml")
    new = read_card(entry)
    val = new.get("val_metrics", {}).get("deeppcb_fscore")
    typer.echo(f"step 3-4: evaluated, exported (ONNX, INT8) and registered {entry} (val DeepPCB-F {val}) {took()}")
    candidate = Version(str(new["name"]), int(new["version"]))
    gate = line_gate(desk.parts, store, plan.base_data)
    result = gate(entry, desk.folder(desk.active()))
    for row in result.table():
        typer.echo(row)
    if not result.passed:
        typer.echo(f"step 5: the gate refused {candidate}: not put in shadow ({'; '.join(result.failures())}) {took()}")
        raise typer.Exit(1)
    typer.echo(f"step 5: {candidate} passed the gate {took()}")
    desk.start_shadow(candidate, who(), "retrained from QA's reviews; passed the gate")
    typer.echo(
        f"step 6: {candidate} in shadow on line {desk.line_id}; promote it with twinspect models promote {took()}"
    )
