"""``twinspect train``: train the defect or part model with Ultralytics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from api.cli.common import ConfigOption, DataDirOption, settings_from


def train_cmd(
    task: Annotated[str, typer.Option(help="Which model: 'defect' (DeepPCB classes) or 'part' (boards).")],
    data: Annotated[Path, typer.Option(help="Data YAML of the dataset.")] = Path("datasets/deeppcb/data.yaml"),
    epochs: Annotated[int, typer.Option(help="Number of epochs.")] = 100,
    imgsz: Annotated[int, typer.Option(help="Training image size (multiple of 32).")] = 640,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 16,
    device: Annotated[str, typer.Option(help="'cpu' or a CUDA device index such as '0'.")] = "cpu",
    model: Annotated[str, typer.Option(help="Architecture YAML (from scratch) or .pt to start from.")] = "yolov8n.yaml",
    name: Annotated[str | None, typer.Option(help="Run name (default: TASK-MODEL).")] = None,
    workers: Annotated[int, typer.Option(help="Data loader workers.")] = 2,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without improvement.")] = 100,
    resume: Annotated[bool, typer.Option(help="Resume the interrupted run NAME from its last.pt.")] = False,
    lr0: Annotated[float | None, typer.Option(help="Initial learning rate (needs --optimizer).")] = None,
    optimizer: Annotated[
        str, typer.Option(help="auto (Ultralytics picks the optimizer and its learning rate), SGD, AdamW, Adam, ...")
    ] = "auto",
    close_mosaic: Annotated[int | None, typer.Option(help="Last epochs trained without mosaic (default 10).")] = None,
    warmup_epochs: Annotated[
        float | None, typer.Option(help="Learning-rate warm-up epochs (default 3; 0 when fine-tuning trained weights).")
    ] = None,
    register: Annotated[
        bool, typer.Option(help="Register the trained model as a new version in weights/ (served once activated).")
    ] = True,
    weights_dir: Annotated[Path, typer.Option(help="Model registry folder.")] = Path("weights"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Train a YOLOv8 model; runs live in DATA_DIR/runs, outside git, and can be resumed."""
    from api.cli.models import echo_registered
    from inspection.ml.registry import register_run
    from inspection.ml.training import TrainRequest, train

    if task not in ("defect", "part"):
        raise typer.BadParameter(f"must be 'defect' or 'part', got {task!r}", param_hint="--task")
    if lr0 is not None and optimizer == "auto":
        raise typer.BadParameter(
            "only used with an explicit --optimizer (SGD, AdamW, ...): Ultralytics' auto "
            "optimizer picks its own learning rate",
            param_hint="--lr0",
        )
    settings = settings_from(config, data_dir)
    arch = Path(model).stem
    run_name = name or f"{task}-{arch}"
    the_task: Literal["defect", "part"] = "defect" if task == "defect" else "part"
    req = TrainRequest(
        task=the_task,
        data=data,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        model=model,
        name=run_name,
        runs_dir=settings.runs_dir,
        workers=workers,
        patience=patience,
        resume=resume,
        lr0=lr0,
        close_mosaic=close_mosaic,
        warmup_epochs=warmup_epochs,
        optimizer=optimizer,
    )
    folder = train(req)
    typer.echo(f"run folder: {folder}")
    if register:
        entry = register_run(folder, task=the_task, registry=weights_dir, data=data)
        echo_registered(entry, weights_dir)
