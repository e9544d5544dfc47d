"""``twinspect eval / predict / export / models``: the ML engineer's model commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.common import ConfigOption, DataDirOption

if TYPE_CHECKING:
    import numpy as np

    from inspection.core.detections import Detections
    from inspection.inference.worker import InferenceWorker

app = typer.Typer(help="Model registry: list and register models.", no_args_is_help=True)

WeightsOption = Annotated[Path, typer.Option("--weights", "-w", help="Registry entry (weights/NAME) or .onnx/.pt.")]


def eval_cmd(
    weights: WeightsOption,
    data: Annotated[Path, typer.Option(help="Data YAML of the dataset.")] = Path("datasets/deeppcb/data.yaml"),
    split: Annotated[str, typer.Option(help="Split to score: val or test.")] = "val",
    conf: Annotated[float, typer.Option(help="Confidence for precision / recall / F1 and the DeepPCB F-score.")] = 0.25,
    backend: Annotated[str | None, typer.Option(help="onnx or torch (default: from the file type).")] = None,
    precision: Annotated[
        str, typer.Option(help="Registry entries: fp32, int8, or auto (the card's serving choice).")
    ] = "fp32",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Score weights: mAP50, mAP50-95, per-class AP, P/R/F1 at --conf, DeepPCB F-score."""
    from api.cli.common import progress
    from inspection.ml.evaluate import evaluate_weights

    if backend not in (None, "onnx", "torch"):
        raise typer.BadParameter("must be 'onnx' or 'torch'", param_hint="--backend")
    _check_precision(precision)
    result = evaluate_weights(
        weights,
        data,
        split=split,
        conf=conf,
        backend=backend,  # type: ignore[arg-type]
        progress=progress(f"eval {split}", "images"),
        precision=precision,  # type: ignore[arg-type]
    )
    s = result.summary()
    if as_json:
        typer.echo(json.dumps({"weights": str(weights), "split": split, **s}))
        return
    typer.echo(f"{weights} on {split}: {s['images']} images, {s['instances']} boxes")
    typer.echo(f"mAP50 {s['map50']:.4f}   mAP50-95 {s['map50_95']:.4f}")
    typer.echo(f"at conf {conf}: precision {s['precision']:.4f}  recall {s['recall']:.4f}  F1 {s['f1']:.4f}")
    typer.echo(
        f"DeepPCB F-score (IoU > 0.33, same type): {s['deeppcb_fscore']:.4f} "
        f"(P {s['deeppcb_precision']:.4f}, R {s['deeppcb_recall']:.4f}); "
        f"highest {s['deeppcb_best_fscore']:.4f} at conf {s['deeppcb_best_conf']:.2f}"
    )
    typer.echo(f"{'class':10s} {'AP50':>7s} {'AP50-95':>8s}")
    for name, ap in s["per_class_ap50"].items():
        ap95 = s["per_class_ap50_95"][name]
        typer.echo(
            f"{name:10s} {ap if ap is not None else float('nan'):7.4f} "
            f"{ap95 if ap95 is not None else float('nan'):8.4f}"
        )


def predict_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Image files and/or folders of images (searched recursively).")],
    weights: WeightsOption,
    conf: Annotated[float, typer.Option(help="Minimum confidence of a reported box.")] = 0.25,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.")] = 0.45,
    merge_iou: Annotated[
        float,
        typer.Option(
            help="One label per place: after NMS, drop a box overlapping a higher-scored one of "
            "another class above this IoU (1.0: off; the defect model serves 0.5)."
        ),
    ] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image per line.")] = False,
    batch: Annotated[int, typer.Option(help="Images per inference call.")] = 1,
    runners: Annotated[
        int, typer.Option(help="Images run side by side (0: one per CPU core, at most 4; 1 on a GPU).")
    ] = 0,
    golden: Annotated[
        Path | None,
        typer.Option(
            help="Reference models: compare every board with this golden image (default: the DeepPCB layout, "
            "each ID_test.jpg with its ID_temp.jpg)."
        ),
    ] = None,
    precision: Annotated[
        str, typer.Option(help="Registry entries: auto (the card's serving choice), fp32 or int8.")
    ] = "auto",
    register: Annotated[
        bool,
        typer.Option(
            "--align/--no-align",
            help="Reference models: register each board to its golden first (as the "
            "engine does); --no-align takes pairs as already registered.",
        ),
    ] = True,
) -> None:
    """Detect defects with ONNX Runtime (the serving path; no torch)."""
    from inspection.core.errors import ModelError
    from inspection.inference.models import concurrency, load_detector, model_input
    from inspection.inference.onnx_detector import DEFAULT_PROVIDERS
    from inspection.inference.worker import InferenceWorker
    from inspection.ml.images import expand_paths

    if not 0.0 <= conf <= 1.0:
        raise ModelError(f"conf: must be between 0 and 1, got {conf}")
    if batch < 1:
        raise ModelError(f"batch: must be at least 1, got {batch}")
    if runners < 0:
        raise ModelError(f"runners: must be 0 (automatic) or more, got {runners}")
    files = expand_paths(paths)
    kind = model_input(weights)
    if golden is not None and kind != "reference":
        raise ModelError(f"--golden: {weights} takes 'image' input and compares no golden")
    runners, threads = concurrency(DEFAULT_PROVIDERS, "onnx", runners)
    _check_precision(precision)
    if not 0.0 < merge_iou <= 1.0:
        raise ModelError(f"merge-iou: must be above 0 and at most 1, got {merge_iou}")
    detector = load_detector(
        weights,
        conf=conf,
        iou=iou,
        backend="onnx",
        threads=threads,
        precision=precision,  # type: ignore[arg-type]
        merge_iou=merge_iou,
    )
    worker = InferenceWorker(detector, "predict", max_batch=batch, max_wait_ms=0, runners=runners).start()
    try:
        if kind == "reference":
            failed = _predict_pairs(worker, files, golden, register, as_json, runners)
        else:
            failed = _predict_images(worker, files, as_json)
    finally:
        worker.stop()
    if failed:
        typer.echo(
            f"twinspect: {failed} of {len(files)} images could not be inspected (see the errors above)", err=True
        )
        raise typer.Exit(2)


def _read(path: Path) -> tuple[Path, np.ndarray | None, str]:
    """(path, image, "") or (path, None, why it cannot be read): one bad file never stops the others."""
    from camera.errors import ImageError
    from inspection.ml.images import read_image

    try:
        return path, read_image(path), ""
    except ImageError as error:
        return path, None, str(error)


def _report_bad(path: Path, problem: str, as_json: bool) -> None:
    """A file that could not be inspected: an error line on stderr, and one in the JSON output."""
    message = problem if problem.startswith(str(path)) else f"{path}: {problem}"
    typer.echo(f"twinspect: error: {message}", err=True)
    if as_json:
        typer.echo(json.dumps({"image": str(path), "error": problem}))


def _predict_images(worker: InferenceWorker, files: list[Path], as_json: bool) -> int:
    """Predict every readable file in input order; returns how many could not be read."""
    from inspection.inference.worker import in_order

    failed = 0
    depth = 2 * worker.runners * worker.max_batch
    for (path, image, problem), det in in_order(
        map(_read, files), lambda item: worker.submit(item[1]) if item[1] is not None else None, depth
    ):
        if image is None or det is None:
            failed += 1
            _report_bad(path, problem, as_json)
            continue
        _print_prediction(path, image.shape[1], image.shape[0], det, as_json)
    return failed


def _predict_pairs(
    worker: InferenceWorker, files: list[Path], golden: Path | None, register: bool, as_json: bool, threads: int
) -> int:
    """Predict every pair in input order; returns how many could not be read."""
    from inspection.ml.pairing import detect_pairs, pair_inputs, prepared_stream

    pairs = pair_inputs(files, golden)
    failed = 0
    for prep, det in detect_pairs(worker, prepared_stream(pairs, register, threads=threads)):
        if prep.unreadable:
            failed += 1
            _report_bad(prep.pair.board, prep.problem, as_json)
            continue
        w, h = prep.board_size
        extra = {"golden": str(prep.pair.golden), "alignment_score": round(prep.score, 4)}
        if det is None:
            if as_json:
                typer.echo(
                    json.dumps(
                        {
                            "image": str(prep.pair.board),
                            "width": w,
                            "height": h,
                            "boxes": [],
                            **extra,
                            "error": prep.problem,
                        }
                    )
                )
            else:
                typer.echo(f"{prep.pair.board}: not inspected: {prep.problem}")
            continue
        _print_prediction(prep.pair.board, w, h, det, as_json, extra)
    return failed


def _print_prediction(
    path: Path, width: int, height: int, det: Detections, as_json: bool, extra: dict[str, object] | None = None
) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {"image": str(path), "width": width, "height": height, "boxes": det.boxes_json(), **(extra or {})}
            )
        )
        return
    counts: dict[str, int] = {}
    for k in det.class_id:
        counts[det.class_names[int(k)]] = counts.get(det.class_names[int(k)], 0) + 1
    summary = ", ".join(f"{n} {c}" for c, n in sorted(counts.items())) or "no defects"
    typer.echo(f"{path}: {summary}")


def export_cmd(
    weights: WeightsOption,
    fmt: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    half: Annotated[bool, typer.Option(help="FP16 weights (needs a GPU).")] = False,
    dynamic_batch: Annotated[bool, typer.Option(help="Dynamic batch dimension (fixed image size).")] = False,
    imgsz: Annotated[
        str | None,
        typer.Option(
            help="Input size: 640, or HEIGHTxWIDTH such as 192x320 for 16:9 frames (default: the model card's)."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="'cpu' or a CUDA index.")] = "cpu",
    check: Annotated[int, typer.Option(help="Images used for the ONNX vs PyTorch check (0: skip).")] = 8,
    sample: Annotated[
        Path | None,
        typer.Option(
            help="Folder of images for the check (default: the model card's dataset if imported, else the "
            "DeepPCB boards the demo shows: $TWINSPECT_DEEPPCB or ../shared/datasets/deeppcb-trainval)."
        ),
    ] = None,
    int8: Annotated[bool, typer.Option(help="Also write model.int8.onnx (static quantization) and eval both.")] = False,
    calib_data: Annotated[
        Path | None,
        typer.Option(help="Data YAML to calibrate INT8 on and eval (default: the model card's training data)."),
    ] = None,
) -> None:
    """Export to ONNX, then compare ONNX Runtime with PyTorch and print the largest box difference."""
    from inspection.core.errors import ModelError
    from inspection.inference.cards import read_card, resolve_model_dir
    from inspection.inference.models import weights_file
    from inspection.ml.export import export_onnx, parse_imgsz
    from inspection.ml.registry import write_card

    if fmt != "onnx":
        raise ModelError(f"format: only 'onnx' is supported, got {fmt!r}")
    pt = weights_file(weights, backend="torch")
    card = None
    if pt.parent.joinpath("card.json").is_file():
        card = read_card(pt.parent)
    size = parse_imgsz(imgsz) if imgsz else (card["imgsz"] if card else 640)
    onnx_path = export_onnx(
        pt,
        imgsz=size,
        half=half,
        dynamic_batch=dynamic_batch,
        device=device,
        input_kind=card.get("input", "image") if card else None,
    )
    typer.echo(f"exported {onnx_path}")
    if card is not None:
        card["export"] = {
            "format": "onnx",
            "half": half,
            "dynamic_batch": dynamic_batch,
            "imgsz": list(size) if isinstance(size, tuple) else size,
        }
    if int8:
        _export_int8(onnx_path, calib_data or (Path(card["training_data"]["yaml"]) if card else None), card)
    if card is not None:
        write_card(resolve_model_dir(pt.parent), card)
    if check:
        _parity(pt, onnx_path, card, check, sample)


def _parity(pt: Path, onnx_path: Path, card: dict | None, n: int, sample: Path | None) -> None:  # type: ignore[type-arg]
    from inspection.ml.export import check_parity

    if card is not None and card.get("input", "image") != "image" and sample is None:
        typer.echo(f"parity check skipped: a {card['input']} model needs its own inputs: give --sample DIR")
        return
    images, where = _sample_images(card, n, sample)
    if not images:
        typer.echo(f"parity check skipped: no images in {where}")
        return
    p = check_parity(pt, onnx_path, images)
    typer.echo(
        f"parity on {p.images} images ({where}): torch {p.boxes_torch} boxes, onnx {p.boxes_onnx} boxes, "
        f"{p.unmatched} unmatched; largest box difference {p.max_box_diff_px:.3f} px, "
        f"largest confidence difference {p.max_conf_diff:.4f}"
    )


def _export_int8(onnx_path: Path, data: Path | None, card: dict | None) -> None:  # type: ignore[type-arg]
    from inspection.core.errors import ModelError
    from inspection.ml.evaluate import evaluate_weights
    from inspection.ml.registry import quantize_and_check

    if data is None:
        raise ModelError("--calib-data: needed for INT8 (the weights have no model card naming their dataset)")
    info = quantize_and_check(onnx_path, data, "val")
    fp32 = evaluate_weights(onnx_path, data, split="val").summary()
    i8 = info["val_metrics"]
    typer.echo(
        f"INT8 {onnx_path.with_name(info['file'])}: mAP50 {i8['map50']} vs fp32 {fp32['map50']}, "
        f"mAP50-95 {i8['map50_95']} vs {fp32['map50_95']}, DeepPCB F {i8['deeppcb_fscore']} vs "
        f"{fp32['deeppcb_fscore']} (val split of {data})"
    )
    if card is not None:  # both files were just written: the card gets both measurements
        card["int8"] = info
        card["val_metrics"] = {**fp32, "split": "val"}


def _sample_images(card: dict | None, n: int, sample: Path | None) -> tuple[list, str]:  # type: ignore[type-arg]
    """Up to ``n`` images for the parity check and where they came from: ``sample`` (every image in it,
    sorted), else the card's dataset (its val split) when imported, else the boards the demo shows."""
    from inspection.core.errors import DatasetError
    from inspection.ml.datasets.yolo import load_data_yaml
    from inspection.ml.images import expand_paths, read_image

    if sample is not None:
        return [read_image(p) for p in expand_paths([sample])[:n]], f"--sample {sample}"
    if card:
        try:
            spec = load_data_yaml(Path(card["training_data"]["yaml"]))
            split = "val" if "val" in spec.splits else next(iter(spec.splits))
            return [read_image(p) for p in spec.images(split)[:n]], f"{split} split of {card['training_data']['yaml']}"
        except (DatasetError, FileNotFoundError, KeyError):
            pass  # the card's dataset is not imported here: the shipped sample boards instead
    from api.cli.line import default_boards

    boards = default_boards()
    tested = sorted(boards.rglob("*_test.jpg"))[:n] if boards.is_dir() else []
    return [read_image(p) for p in tested], f"sample boards {boards}"


@app.command("register")
def register_cmd(
    run: Annotated[Path, typer.Argument(help="Training run folder (DATA_DIR/runs/NAME).")],
    task: Annotated[str, typer.Option(help="defect or part.")],
    data: Annotated[Path, typer.Option(help="Data YAML the run was trained on.")],
    checkpoint: Annotated[str, typer.Option(help="best.pt or last.pt.")] = "best.pt",
    name: Annotated[str | None, typer.Option(help="Registry name (default: TASK-ARCH).")] = None,
    weights_dir: Annotated[Path, typer.Option(help="Model registry folder.")] = Path("weights"),
) -> None:
    """Register a run's checkpoint (finished or in progress) as a new model version."""
    from inspection.ml.registry import register_run

    entry = register_run(run, task=task, registry=weights_dir, data=data, name=name, checkpoint=checkpoint)
    echo_registered(entry, weights_dir)


def echo_registered(entry: Path, weights_dir: Path) -> None:
    """What registering did (a new version) and did not do (change what is served), and how to serve it."""
    name, _, version = entry.name.rpartition("-v")
    alias = weights_dir / name
    active = alias.read_text().strip() if alias.is_file() else None
    typer.echo(f"registered {entry}")
    typer.echo(
        f"served: {active or 'none'} (registering never changes it); to serve this version: "
        f"twinspect models activate {name}:{version}"
        + (f" --weights-dir {weights_dir}" if weights_dir != Path("weights") else "")
    )


@app.command("activate")
def activate_cmd(
    model: Annotated[str, typer.Argument(help="The version to serve: NAME:VERSION, e.g. defect-yolov8n:2.")],
    weights_dir: Annotated[Path, typer.Option(help="Model registry folder.")] = Path("weights"),
    line: Annotated[
        str | None,
        typer.Option(help="Serve it on this line now (no gate; see models promote); without: move weights/NAME."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the line's model history).")] = "activation",
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve a registered version: on a line (--line), or as weights/NAME, what the config names by default."""
    from inspection.ml.registry import activate, parse_model_ref

    name, version = parse_model_ref(model)
    if line is not None:
        from api.cli.model_delivery import NOTE, open_desk, who
        from inspection.store import Version

        desk, _ = open_desk(config, data_dir, line, weights_dir, model=model)
        change = desk.activate(Version(name, version), who(), reason)
        typer.echo(f"line {desk.line_id}: {change.model} active (was {change.previous or 'none'}); {NOTE}")
        return
    before, now = activate(weights_dir, name, version)
    typer.echo(
        f"{weights_dir / name} -> {now} (was {before or 'none'}); a running serve or demo keeps its model until it "
        f"restarts"
    )


@app.command("list")
def list_cmd(weights_dir: Annotated[Path, typer.Option(help="Model registry folder.")] = Path("weights")) -> None:
    """List registered models with their headline metrics."""
    for card_path in sorted(weights_dir.glob("*/card.json")):
        card = json.loads(card_path.read_text())
        vm = card.get("val_metrics", {})
        typer.echo(
            f"{card_path.parent.name:28s} {card['task']:7s} imgsz {card['imgsz']:4d}  "
            f"epochs {card['epochs']['trained']:3d}  mAP50 {vm.get('map50')}  "
            f"DeepPCB-F {vm.get('deeppcb_fscore')}"
        )


def _check_precision(precision: str) -> None:
    if precision not in ("auto", "fp32", "int8"):
        raise typer.BadParameter("must be 'auto', 'fp32' or 'int8'", param_hint="--precision")
