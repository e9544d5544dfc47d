"""The GPU run's dataset: every board of the pack rebuilt and imported with our importer, in shards.

Used by bench/gpu_train.py (on the GPU machine and in its CPU smoke test); it needs what the GPU
image has (numpy, OpenCV, PyYAML) and twinspect's importer, nothing of the service.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _shard(job: tuple[str, str, str, list[str]]) -> dict[str, Any]:
    """Rebuild one shard's boards from the pack and import them (reference input)."""
    from gpu_pack import unpack

    from inspection.ml.datasets.deeppcb import import_deeppcb

    pack, src, ds, boards = job
    stats = unpack(Path(pack), Path(src), set(boards))
    card = import_deeppcb(Path(src), Path(ds), input_kind="reference", seed=0)
    shutil.rmtree(src, ignore_errors=True)
    return {"unpack": stats, "card": card}


def build_dataset(pack: Path, work: Path, shards: int) -> dict[str, Any]:
    """``work/dataset``: the reference dataset of every board in the pack; returns its facts."""
    import yaml
    from gpu_pack import list_boards, read_pack

    started = time.monotonic()
    manifest, _ = read_pack(pack)
    boards = list_boards(manifest)
    k = max(1, min(shards, len(boards)))
    jobs = [(str(pack), str(work / f"src-{i}"), str(work / f"ds-{i}"), boards[i::k]) for i in range(k)]
    if k > 1:
        with ProcessPoolExecutor(k) as ex:
            results = list(ex.map(_shard, jobs))
    else:
        results = [_shard(jobs[0])]
    final = work / "dataset"
    shutil.rmtree(final, ignore_errors=True)
    splits: dict[str, dict[str, Any]] = {}
    for _, _, ds, _ in jobs:
        for kind in ("images", "labels"):
            for split_dir in sorted((Path(ds) / kind).iterdir()):
                target = final / kind / split_dir.name
                target.mkdir(parents=True, exist_ok=True)
                for f in split_dir.iterdir():
                    if (target / f.name).exists():
                        raise RuntimeError(f"{f.name}: in two shards")
                    f.rename(target / f.name)
    for r in results:
        for split, st in r["card"]["splits"].items():
            acc = splits.setdefault(split, {"images": 0, "background_images": 0, "boxes": 0})
            for key in acc:
                acc[key] += st[key]
    data = yaml.safe_load((Path(jobs[0][2]) / "data.yaml").read_text())
    for split in ("train", "val", "test"):
        data.pop(split, None)
    ordered = {"path": "."}
    ordered.update({s: f"images/{s}" for s in ("train", "val", "test") if s in splits})
    ordered.update({k2: v for k2, v in data.items() if k2 != "path"})
    (final / "data.yaml").write_text(yaml.safe_dump(ordered, sort_keys=False))
    card = {
        "name": "deeppcb-ref (rebuilt from the GPU pack)",
        "input": "reference",
        "shards": k,
        "split_rule": results[0]["card"].get("split_rule"),
        "splits": splits,
        "pack_mode": manifest["mode"],
        "pack_source": manifest.get("source"),
    }
    write_json(final / "card.json", card)
    for job in jobs:
        shutil.rmtree(job[2], ignore_errors=True)
    unpacked = {key: sum(r["unpack"][key] for r in results) for key in ("images", "exact", "same_as_packer")}
    return {
        "data": str(final / "data.yaml"),
        "splits": splits,
        "shards": k,
        "boards": len(boards),
        "pack": {"mode": manifest["mode"], **unpacked},
        "build_s": round(time.monotonic() - started, 1),
    }
