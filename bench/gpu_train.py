#!/usr/bin/env python3
"""The Python side of ``bench/gpu_train.sh``: reference-aware defect models within a time budget.

``run`` (the orchestrator; imports neither torch nor Ultralytics):

1. rebuilds the DeepPCB boards from ``build/gpu-pack/deeppcb.twpack`` and imports them with
   our importer, ``import_deeppcb(..., input_kind="reference")``, in shards of boards side by
   side (the output depends only on each board's id and the seed, so the merged shards are
   byte for byte the dataset one import would write; tests/bench checks that);
2. trains each model in its own process (``train-one``), side by side, under one deadline:
   Ultralytics' ``time=`` (hours) fits the epochs, learning-rate schedule and close-mosaic
   into the time left at the first batch, ``--epochs`` caps them; a process still alive at
   the hard deadline is ended and its last checkpoint salvaged;
3. writes OUT: ``summary.json``, ``extras.tar.gz`` (args.yaml of each run, full logs, dataset
   card) and per model ``NAME/weights/best.pt`` (optimizer stripped, fp16; split into
   ``best.pt.partN`` when over 15 MiB: the device tool returns files of at most 16 MiB)
   plus ``NAME/results.csv``. ``gpu_train.sh`` adds ``gpu_train.log``: 8 files for two
   models (YOLOv8s in two parts), the most the tool returns. ``python bench/gpu_pack.py collect`` rejoins them.

Augmentation is ``inspection.ml.training.augmentation(spec)`` (plane mixing off for
reference datasets), exactly as ``twinspect train`` uses it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _p in (str(REPO), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from gpu_dataset import build_dataset, write_json  # noqa: E402

MODELS: dict[str, dict[str, str]] = {
    # the shipped plain model as the start (its 3 input planes become board, golden, difference)
    "n": {"name": "defect-ref-yolov8n", "init": "weights/defect-yolov8n-v3/model.pt"},
    # no YOLOv8s weights exist offline: from the architecture, from scratch
    "s": {"name": "defect-ref-yolov8s", "init": "yolov8s.yaml"},
}
SPLIT_MIB_DEFAULT = 15  # the device tool returns files of at most 16 MiB
METRIC_KEYS = {
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
}


def say(msg: str) -> None:
    print(f"[gpu_train {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- one training (own process)


def _metrics(raw: dict[str, Any] | None) -> dict[str, float]:
    raw = raw or {}
    return {new: round(float(raw[old]), 5) for old, new in METRIC_KEYS.items() if old in raw}


def cmd_train_one(a: argparse.Namespace) -> int:
    result: dict[str, Any] = {
        "name": a.name,
        "init": a.model,
        "status": "failed",
        "epochs_cap": a.epochs,
        "imgsz": a.imgsz,
        "batch": a.batch,
        "workers": a.workers,
        "device": a.device,
    }
    result_path = Path(a.result)
    epochs_log = Path(a.epochs_log).open("a", buffering=1)  # noqa: SIM115 (closed in the finally below)
    started = time.time()
    state: dict[str, Any] = {"in_epoch": False, "t_train": None, "final": None, "curve": []}
    try:
        from inspection.inference.offline import ultralytics
        from inspection.ml.datasets.yolo import load_data_yaml
        from inspection.ml.training import augmentation, check_classes

        ul = ultralytics()
        import torch
        from ultralytics.utils.torch_utils import strip_optimizer

        result.update(
            torch=torch.__version__,
            cuda=torch.version.cuda,
            ultralytics=ul.__version__,
            device_name=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        )
        spec = load_data_yaml(Path(a.data))
        check_classes("defect", spec)
        runs = Path(a.runs)
        runs.mkdir(parents=True, exist_ok=True)
        data_yaml = spec.ultralytics_yaml(runs / f"{a.name}.data.yaml")

        def on_train_start(tr: Any) -> None:
            left = a.deadline - time.time()
            tr.args.time = max(left, 5.0) / 3600  # the budget counts from the first batch
            state["t_train"] = time.time()
            say(
                f"{a.name}: first batch after {time.time() - started:.0f} s of setup; {left:.0f} s to train; "
                f"{len(tr.train_loader.dataset)} train / {len(tr.test_loader.dataset)} val images, batch "
                f"{tr.batch_size}, workers {tr.train_loader.num_workers}, amp {bool(tr.amp)}"
            )

        def on_train_epoch_end(tr: Any) -> None:
            epoch = tr.epoch + 1
            tr.args.val = epoch == 1 or epoch % a.val_every == 0
            if not tr.args.val:
                tr.fitness = None  # keeps best.pt from being overwritten by an epoch nobody measured
            state["in_epoch"] = True

        def on_fit_epoch_end(tr: Any) -> None:
            if not state["in_epoch"]:  # the final validation of best.pt reports here too
                state["final"] = _metrics(tr.metrics)
                return
            state["in_epoch"] = False
            if tr.epochs > a.epochs:  # time mode re-plans the epochs after each one; cap them
                tr.epochs = tr.args.epochs = a.epochs
            epoch = tr.epoch + 1
            if epoch >= tr.epochs:
                tr.stop = True
            row: dict[str, Any] = {
                "epoch": epoch,
                "epochs_planned": tr.epochs,
                "time_s": round(time.time() - (state["t_train"] or started), 1),
            }
            if tr.fitness is not None:  # validated this epoch
                row.update(_metrics(tr.metrics))
                state["curve"].append(row)
                say(
                    f"{a.name}: epoch {epoch}/{tr.epochs} {row['time_s']:.0f} s mAP50 {row.get('mAP50', 0):.3f} "
                    f"mAP50-95 {row.get('mAP50-95', 0):.3f} P {row.get('precision', 0):.3f} "
                    f"R {row.get('recall', 0):.3f}"
                )
            epochs_log.write(json.dumps(row) + "\n")

        model = ul.YOLO(a.model)
        for event, fn in (
            ("on_train_start", on_train_start),
            ("on_train_epoch_end", on_train_epoch_end),
            ("on_fit_epoch_end", on_fit_epoch_end),
        ):
            model.add_callback(event, fn)
        model.train(
            data=str(data_yaml),
            epochs=a.epochs,
            time=max(a.deadline - time.time(), 60) / 3600,
            imgsz=a.imgsz,
            batch=a.batch,
            device=a.device,
            workers=a.workers,
            cache=a.cache,
            project=str(runs),
            name=a.name,
            exist_ok=True,
            patience=100_000,
            seed=0,
            deterministic=False,
            plots=False,
            val=True,
            verbose=True,
            **augmentation(spec),
        )
        tr = model.trainer
        train_s = time.time() - (state["t_train"] or started)
        rows = list(csv.DictReader(tr.csv.open())) if tr.csv.is_file() else []
        src = tr.best if tr.best.is_file() else tr.last
        strip_optimizer(str(src), s=a.stripped)
        result.update(
            status="ok",
            epochs_done=len(rows),
            train_s=round(train_s, 1),
            images_per_s=round(len(rows) * len(tr.train_loader.dataset) / max(train_s, 1e-6), 1),
            final=state["final"] or _metrics(tr.metrics),
            checkpoint=src.name,
            save_dir=str(tr.save_dir),
            amp=bool(tr.amp),
            batch=tr.batch_size,
        )
        return 0
    except BaseException as exc:
        result["error"] = f"{exc.__class__.__name__}: {exc}"
        raise
    finally:
        result["curve"] = state["curve"]
        result["wall_s"] = round(time.time() - started, 1)
        write_json(result_path, result)
        epochs_log.close()


def cmd_strip(a: argparse.Namespace) -> int:
    """Salvage: strip a checkpoint left by a training that was ended."""
    from inspection.inference.offline import ultralytics

    ultralytics()
    from ultralytics.utils.torch_utils import strip_optimizer

    strip_optimizer(a.src, s=a.dst)
    return 0


# ---------------------------------------------------------------- orchestrator


def _gpu_sample() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip().replace(", ", "% util, ") + " MiB" if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _host_memory() -> dict[str, float | None]:
    gib = float(1 << 30)
    page = os.sysconf("SC_PAGE_SIZE")
    shm = shutil.disk_usage("/dev/shm").free / gib if os.path.isdir("/dev/shm") else None
    return {
        "mem_total_gb": round(page * os.sysconf("SC_PHYS_PAGES") / gib, 1),
        "mem_available_gb": round(page * os.sysconf("SC_AVPHYS_PAGES") / gib, 1),
        "shm_free_gb": round(shm, 1) if shm is not None else None,
    }


def _stop(proc: subprocess.Popen[bytes], name: str) -> None:
    say(f"{name}: past the hard deadline; ending it (process group {proc.pid})")
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _out_files(run_out: Path, stripped: Path, results_csv: Path | None, split_bytes: int) -> dict[str, Any]:
    files: dict[str, Any] = {}
    weights = run_out / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    size = stripped.stat().st_size
    entry: dict[str, Any] = {"sha256": sha256(stripped), "bytes": size}
    if size <= split_bytes:
        shutil.copyfile(stripped, weights / "best.pt")
    else:
        parts = []
        with stripped.open("rb") as fh:
            for n, block in enumerate(iter(lambda: fh.read(split_bytes), b""), start=1):
                (weights / f"best.pt.part{n}").write_bytes(block)
                parts.append(f"weights/best.pt.part{n}")
        entry["parts"] = parts
    files["weights/best.pt"] = entry
    if results_csv and results_csv.is_file():
        shutil.copyfile(results_csv, run_out / "results.csv")
        files["results.csv"] = {"sha256": sha256(results_csv), "bytes": results_csv.stat().st_size}
    return files


def cmd_run(a: argparse.Namespace) -> int:
    t0 = float(os.environ.get("GPU_TRAIN_T0") or time.time())
    smoke = a.cpu_smoke
    epochs = a.epochs or (1 if smoke else 200)
    budget = a.budget_s or (300 if smoke else 480)
    models = [m for m in (a.models or ("n" if smoke else "n,s")).split(",") if m]
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"--models: unknown model {m!r} (known: {', '.join(MODELS)})")
    imgsz = a.imgsz or (64 if smoke else 640)
    batch = a.batch or (4 if smoke else 64)
    device = a.device or ("cpu" if smoke else "0")
    val_every = a.val_every or (1 if smoke else 5)
    cpus = os.cpu_count() or 1
    # workers per model: the cores left after one main process per model, shared out (at most 8)
    auto_workers = 0 if smoke else max(1, min(8, (cpus - len(models)) // len(models)))
    workers = a.workers if a.workers is not None else auto_workers
    shards = a.shards or (2 if smoke else min(16, cpus))
    host = _host_memory()
    shm_free = host.get("shm_free_gb")
    if workers and shm_free is not None:
        # DataLoader workers hand batches over in /dev/shm: ~2 batches in flight per worker
        per_worker = 2 * batch * 3 * imgsz * imgsz * 1.5 / (1 << 30)
        fit = int(shm_free / (per_worker * len(models)))
        if fit < workers:
            say(f"/dev/shm has {shm_free} GiB free: {max(fit, 1)} workers per model, not {workers}")
            workers = max(fit, 1)
    split_bytes = int(a.split_mib * (1 << 20))
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(a.work).resolve() if a.work else Path(tempfile.mkdtemp(prefix="twinspect-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    pack = Path(a.pack).resolve() / "deeppcb.twpack"
    train_deadline = t0 + budget - a.reserve_s
    kill_at = t0 + budget - 15
    summary: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t0)),
        "smoke": smoke,
        "budget_s": budget,
        "settings": {
            "epochs_cap": epochs,
            "imgsz": imgsz,
            "batch": batch,
            "device": device,
            "workers_per_model": workers,
            "val_every": val_every,
            "cache": a.cache,
            "side_by_side": len(models),
            "shards": shards,
        },
        "host": {"cpus": cpus, "python": sys.version.split()[0], **host},
        "models": {},
    }
    say(
        f"budget {budget} s (training until +{train_deadline - t0:.0f} s, hard stop at +{kill_at - t0:.0f} s); "
        f"models {','.join(models)}; {cpus} cpus, {workers} workers per model; memory {host}; work {work}"
    )

    if not pack.is_file():
        summary["error"] = f"{pack}: no pack (run python bench/gpu_pack.py here and carry build/gpu-pack)"
        write_json(out / "summary.json", summary)
        say(summary["error"])
        return 2
    try:
        ds = build_dataset(pack, work, shards)
    except Exception as exc:
        summary["error"] = f"dataset: {exc.__class__.__name__}: {exc}"
        write_json(out / "summary.json", summary)
        raise
    summary["dataset"] = ds
    say(
        f"dataset: {ds['boards']} boards -> {json.dumps(ds['splits'])} in {ds['build_s']} s "
        f"({ds['shards']} shards); pack images rebuilt {ds['pack']['images']}, equal to the original decode "
        f"{ds['pack']['exact']}, equal to the packer's rebuild {ds['pack']['same_as_packer']}"
    )
    write_json(out / "summary.json", summary)

    env = dict(os.environ, PYTHONUNBUFFERED="1", XDG_DATA_HOME=str(work / "xdg"))
    procs: dict[str, tuple[subprocess.Popen[bytes], dict[str, Path]]] = {}
    for m in models:
        name = MODELS[m]["name"]
        paths = {k: work / f"{name}.{k}" for k in ("log", "result.json", "epochs.jsonl", "best.pt")}
        cmd = [
            sys.executable,
            "-u",
            str(Path(__file__).resolve()),
            "train-one",
            "--name",
            name,
            "--model",
            MODELS[m]["init"],
            "--data",
            ds["data"],
            "--runs",
            str(work / "runs"),
            "--epochs",
            str(epochs),
            "--imgsz",
            str(imgsz),
            "--batch",
            str(batch),
            "--device",
            device,
            "--workers",
            str(workers),
            "--cache",
            str(a.cache),
            "--val-every",
            str(val_every),
            "--deadline",
            f"{train_deadline:.1f}",
            "--result",
            str(paths["result.json"]),
            "--epochs-log",
            str(paths["epochs.jsonl"]),
            "--stripped",
            str(paths["best.pt"]),
        ]
        log = paths["log"].open("wb")
        procs[name] = (
            subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
            paths,
        )
        say(f"{name}: started from {MODELS[m]['init']} (pid {procs[name][0].pid}), log {paths['log']}")

    shown = dict.fromkeys(procs, 0)
    samples: list[dict[str, Any]] = []
    next_sample = time.time()
    while True:
        for name, (_, paths) in procs.items():  # echo the children's progress lines
            try:
                with paths["log"].open("rb") as fh:
                    fh.seek(shown[name])
                    new = fh.read()
            except OSError:
                continue
            cut = new.rfind(b"\n") + 1
            shown[name] += cut
            for line in new[:cut].decode(errors="replace").splitlines():
                if line.startswith("[gpu_train") or "Error" in line or "Traceback" in line:
                    print(line, flush=True)
        if time.time() >= next_sample:
            gpu = _gpu_sample()
            sample = {"t": round(time.time() - t0), "load1": round(os.getloadavg()[0], 1), "gpu": gpu}
            samples.append(sample)
            if gpu or not smoke:
                say(f"+{sample['t']} s load {sample['load1']} gpu {gpu}")
            next_sample = time.time() + 20
        alive = [n for n, (p, _) in procs.items() if p.poll() is None]
        if not alive:
            break
        if time.time() >= kill_at:
            for n in alive:
                _stop(procs[n][0], n)
            break
        time.sleep(1)
    summary["samples"] = samples

    for name, (proc, paths) in procs.items():
        rc = proc.wait()
        info: dict[str, Any] = {"status": "failed", "returncode": rc}
        if paths["result.json"].is_file():
            info.update(json.loads(paths["result.json"].read_text()))
        else:
            info["status"] = "ended at the hard deadline" if rc < 0 else "failed"
        if paths["epochs.jsonl"].is_file():
            rows = [json.loads(x) for x in paths["epochs.jsonl"].read_text().splitlines() if x.strip()]
            info.setdefault("curve", [r for r in rows if "mAP50" in r])
            info.setdefault("epochs_done", len(rows))
        run_dir = work / "runs" / name
        if not paths["best.pt"].is_file():  # salvage the newest checkpoint of an ended run
            src = next(
                (p for p in (run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt") if p.is_file()), None
            )
            if src is not None:
                subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "strip", str(src), str(paths["best.pt"])],
                    cwd=REPO,
                    env=env,
                    timeout=90,
                    check=False,
                )
                info["checkpoint"] = f"{src.name} (salvaged)"
        if paths["best.pt"].is_file():
            info["files"] = _out_files(out / name, paths["best.pt"], run_dir / "results.csv", split_bytes)
        args_yaml = run_dir / "args.yaml"
        if args_yaml.is_file():
            import yaml

            info["args"] = yaml.safe_load(args_yaml.read_text())
        summary["models"][name] = info
        if info["status"] != "ok" and paths["log"].is_file():
            tail = paths["log"].read_bytes()[-3000:].decode(errors="replace")
            print(f"---- last lines of {paths['log'].name} ----\n{tail}\n----", flush=True)
        final = info.get("final") or {}
        say(
            f"{name}: {info['status']} rc {rc}, epochs {info.get('epochs_done')}, "
            f"train {info.get('train_s')} s, {info.get('images_per_s')} img/s, final (best.pt) mAP50 "
            f"{final.get('mAP50')} mAP50-95 {final.get('mAP50-95')}{' ' + info['error'] if 'error' in info else ''}"
        )

    with tarfile.open(out / "extras.tar.gz", "w:gz") as tar:
        for name, (_, paths) in procs.items():
            for key in ("log", "epochs.jsonl"):
                if paths[key].is_file():
                    tar.add(paths[key], arcname=f"{name}/{paths[key].name}")
            if (work / "runs" / name / "args.yaml").is_file():
                tar.add(work / "runs" / name / "args.yaml", arcname=f"{name}/args.yaml")
        tar.add(work / "dataset" / "card.json", arcname="dataset-card.json")
        tar.add(work / "dataset" / "data.yaml", arcname="dataset-data.yaml")
    summary["wall_s"] = round(time.time() - t0, 1)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "summary.json")
    files = sorted({*files, "summary.json", "gpu_train.log"})
    summary["out_files"] = files
    too_big = [f for f in files if (out / f).is_file() and (out / f).stat().st_size > 16 << 20]
    summary["out_within_tool_limits"] = len(files) <= 8 and not too_big
    write_json(out / "summary.json", summary)
    say(f"OUT {out}: {len(files)} files (the device tool returns 8 of at most 16 MiB): {', '.join(files)}")
    say(f"done in {summary['wall_s']} s")
    if not a.keep_work and not a.work:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(m.get("files") for m in summary["models"].values())
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="rebuild the dataset, train the models, write OUT")
    r.add_argument("--out", required=True)
    r.add_argument("--pack", default=str(REPO / "build" / "gpu-pack"))
    r.add_argument("--work", default=None, help="scratch folder (kept); default a temporary one, removed")
    r.add_argument("--keep-work", action="store_true")
    r.add_argument("--cpu-smoke", action="store_true", help="CPU, 1 epoch, imgsz 64, YOLOv8n only")
    r.add_argument("--epochs", type=int, default=None, help="cap on epochs (default 200; smoke 1)")
    r.add_argument(
        "--budget-s", type=float, default=None, help="whole run, from gpu_train.sh's start (default 480; smoke 300)"
    )
    r.add_argument(
        "--reserve-s", type=float, default=45.0, help="kept after training for the final validation, stripping and OUT"
    )
    r.add_argument("--models", default=None, help="comma list of n,s (default n,s; smoke n)")
    r.add_argument("--imgsz", type=int, default=None)
    r.add_argument("--batch", type=int, default=None)
    r.add_argument("--device", default=None)
    r.add_argument("--workers", type=int, default=None, help="dataloader workers per model")
    r.add_argument("--cache", default="ram", choices=("ram", "disk", "False"))
    r.add_argument("--val-every", type=int, default=None, help="validate every N epochs (default 5; smoke 1)")
    r.add_argument("--shards", type=int, default=None, help="import processes (default: cores, at most 16)")
    r.add_argument("--split-mib", type=float, default=SPLIT_MIB_DEFAULT)
    t = sub.add_parser("train-one", help="one training (run starts these)")
    for flag in (
        "--name",
        "--model",
        "--data",
        "--runs",
        "--device",
        "--cache",
        "--result",
        "--epochs-log",
        "--stripped",
    ):
        t.add_argument(flag, required=True)
    for flag in ("--epochs", "--imgsz", "--batch", "--workers", "--val-every"):
        t.add_argument(flag, type=int, required=True)
    t.add_argument("--deadline", type=float, required=True, help="time.time() by which training stops")
    s = sub.add_parser("strip", help="strip a checkpoint (salvage)")
    s.add_argument("src")
    s.add_argument("dst")
    a = parser.parse_args(argv)
    if getattr(a, "cache", None) == "False":
        a.cache = False
    return {"run": cmd_run, "train-one": cmd_train_one, "strip": cmd_strip}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
