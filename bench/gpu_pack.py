#!/usr/bin/env python3
"""Pack what a GPU training run needs that git does not hold; collect what comes back.

``build`` (here, on the CPU machine) writes ``build/gpu-pack/`` (ignored by git)::

    deeppcb.twpack                 the DeepPCB boards, labels and list, compactly (below)
    ultralytics-8.4.190-*.whl      Ultralytics itself (the GPU image lacks it), installed offline there
    PACK.json                      what is in the pack, its sizes, and what travels with a device run

``collect`` (here, after the device run) turns the files that came back into run folders
that ``twinspect models register`` accepts (``weights/best.pt`` + ``results.csv``).

**The boards.** DeepPCB's images are binary boards saved as JPEG: every template is a
binary image saved at quality 95, every tested board a binary image saved at quality 95
and then again at quality 75 (read off each file's quantisation table; re-encoding the
thresholded image that way reproduces the grey templates bit for bit and 99% of a tested
board's pixels). So each image is stored as its 1-bit thresholded copper (``np.packbits``
+ LZMA, ~2.4 KB) and the JPEG chain that made it; unpacking re-runs that chain, which
regenerates the original JPEG artefacts. ``--exact`` also stores the sparse residual
against the original decode (about twice the size) so that unpacking is lossless.
The pack records a hash of every original decode, so the GPU side reports how many
images it rebuilt exactly.

Container (``deeppcb.twpack``): ``b"TWPACK1\\n"``, a little-endian u64 length, the
LZMA-compressed JSON manifest (text files by path; one entry per image with its shape,
chain, blob offsets and hashes), then the per-image blobs.

This module runs on the GPU machine too (``bench/gpu_train.py`` imports it): it needs
numpy and OpenCV there; Pillow is used only by ``build``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "build" / "gpu-pack"
PACK_NAME = "deeppcb.twpack"
MAGIC = b"TWPACK1\n"
ULTRALYTICS = "ultralytics==8.4.190"  # the version pinned in requirements.lock
TRAVEL_LIMIT = 64 << 20  # what one device run may carry: tracked + untracked files + carried paths
RETURN_FILE_LIMIT = 16 << 20  # one file back from $OUT
# LZMA at its strongest, with a 1 MiB dictionary: each blob is ~50 KB, so the default 64 MiB one of
# preset 9 only costs memory and time (same size, 5x slower)
_XZ = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]
_STD_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ]
)


# ---------------------------------------------------------------- image codec


def array_hash(a: np.ndarray) -> str:
    """Short content hash of an image array (shape included)."""
    return hashlib.sha256(repr(a.shape).encode() + np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def jpeg_quality(path: Path) -> int | None:
    """The IJG quality whose standard luminance table the JPEG uses, or None."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            table = np.asarray(im.quantization[0])  # type: ignore[attr-defined]
    except (AttributeError, KeyError, OSError):
        return None
    for q in range(100, 0, -1):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        if np.array_equal(np.clip((_STD_LUMA * scale + 50) // 100, 1, 255), table):
            return q
    return None


def run_chain(binary: np.ndarray, chain: Iterable[int]) -> np.ndarray:
    """The binary image pushed through JPEG encode/decode at each quality of ``chain``."""
    img = binary
    for q in chain:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        if not ok:
            raise RuntimeError("JPEG encode failed")
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        if decoded is None:
            raise RuntimeError("JPEG decode failed")
        img = decoded
    return img


def _encode_one(job: tuple[str, str, bool]) -> tuple[dict[str, Any], bytes, bytes]:
    """(entry, bits blob, residual blob) of one image file."""
    path, rel, exact = job
    grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)  # exactly what the importer reads
    if grey is None:
        raise ValueError(f"{path}: unreadable image")
    binary = np.where(grey > 127, 255, 0).astype(np.uint8)
    q = jpeg_quality(Path(path))
    chains: list[tuple[int, ...]] = [()] if q is None else [(q,)] + ([(95, q)] if q != 95 else [])
    best: tuple[int, tuple[int, ...], np.ndarray] | None = None
    for chain in chains:
        synth = run_chain(binary, chain)
        wrong = int(np.count_nonzero(synth != grey))
        if best is None or wrong < best[0]:
            best = (wrong, chain, synth)
    assert best is not None
    wrong, chain, synth = best
    bits = lzma.compress(np.packbits(binary > 0).tobytes(), filters=_XZ)
    res = b""
    if exact and wrong:
        diff = grey.astype(np.int16) - synth.astype(np.int16)
        idx = np.flatnonzero(diff)
        steps = np.diff(idx, prepend=0).astype(np.uint32)
        res = lzma.compress(struct.pack("<I", idx.size) + steps.tobytes() + diff.ravel()[idx].tobytes(), filters=_XZ)
        synth = (synth.astype(np.int16) + diff).astype(np.uint8)
    entry = {
        "path": rel,
        "h": int(grey.shape[0]),
        "w": int(grey.shape[1]),
        "chain": list(chain),
        "sha": array_hash(grey),
        "synth": array_hash(synth),
        "exact_px": round(1 - wrong / grey.size, 5),
    }
    return entry, bits, res


def decode_image(entry: dict[str, Any], blobs: memoryview) -> np.ndarray:
    """Rebuild one grey image from its pack entry."""
    h, w = entry["h"], entry["w"]
    off, n = entry["bits"]
    flat = np.unpackbits(np.frombuffer(lzma.decompress(blobs[off : off + n]), np.uint8))[: h * w]
    img = run_chain((flat.reshape(h, w) * 255).astype(np.uint8), entry["chain"])
    if entry.get("res"):
        off, n = entry["res"]
        raw = lzma.decompress(blobs[off : off + n])
        (count,) = struct.unpack_from("<I", raw)
        idx = np.cumsum(np.frombuffer(raw, np.uint32, count, 4), dtype=np.int64)
        vals = np.frombuffer(raw, np.int16, count, 4 + 4 * count)
        flat16 = img.astype(np.int16).ravel()
        flat16[idx] += vals
        img = flat16.reshape(h, w).astype(np.uint8)
    return img


# ---------------------------------------------------------------- container


def write_pack(path: Path, manifest: dict[str, Any], blobs: list[bytes]) -> None:
    head = lzma.compress(json.dumps(manifest, separators=(",", ":")).encode(), filters=_XZ)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(MAGIC + struct.pack("<Q", len(head)) + head)
        for b in blobs:
            fh.write(b)
    tmp.replace(path)


def read_pack(path: Path) -> tuple[dict[str, Any], memoryview]:
    """(manifest, blob area) of a pack file."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path}: not a twinspect GPU pack")
    (n,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    manifest = json.loads(lzma.decompress(data[start : start + n]))
    return manifest, memoryview(data)[start + n :]


def list_boards(manifest: dict[str, Any]) -> list[str]:
    """Board ids of the pack, in list order (every list file)."""
    ids = []
    for rel, text in manifest["files"].items():
        if rel.endswith(("trainval.txt", "test.txt")) and rel.count("/") == 1:
            ids += [Path(line.split()[0]).stem for line in text.splitlines() if line.strip()]
    return ids


def _board_of(image_rel: str) -> str:
    return Path(image_rel).stem.rsplit("_", 1)[0]


_WORKER_PACK: tuple[dict[str, Any], memoryview] | None = None


def _unpack_images(args: tuple[str, str, list[int]]) -> list[tuple[str, bool, bool]]:
    pack, dest, indices = args
    global _WORKER_PACK
    if _WORKER_PACK is None or _WORKER_PACK[0].get("_path") != pack:
        manifest, blobs = read_pack(Path(pack))
        manifest["_path"] = pack
        _WORKER_PACK = (manifest, blobs)
    manifest, blobs = _WORKER_PACK
    out = []
    for i in indices:
        entry = manifest["images"][i]
        img = decode_image(entry, blobs)
        target = Path(dest) / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        # The importer opens "<id>_test.jpg" / "<id>_temp.jpg" by name; OpenCV picks the decoder
        # by content, so a lossless PNG under the .jpg name is read back exactly as rebuilt.
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise RuntimeError(f"{target}: PNG encode failed")
        target.write_bytes(buf.tobytes())
        h = array_hash(img)
        out.append((entry["path"], h == entry["sha"], h == entry["synth"]))
    return out


def unpack(pack: Path, dest: Path, boards: set[str] | None = None, processes: int = 1) -> dict[str, Any]:
    """Write a DeepPCB-layout folder (``dest/PCBData``) holding the pack's boards (or ``boards``).

    Returns counts: images, exact (equal to the original decode) and same_as_packer (equal
    to what the packing machine rebuilt: a check that JPEG coding agrees across machines).
    """
    manifest, _ = read_pack(pack)
    dest.mkdir(parents=True, exist_ok=True)
    for rel, text in manifest["files"].items():
        if rel.endswith(("trainval.txt", "test.txt")) and rel.count("/") == 1 and boards is not None:
            text = "".join(
                line + "\n" for line in text.splitlines() if line.strip() and Path(line.split()[0]).stem in boards
            )
        elif boards is not None and rel.endswith(".txt") and Path(rel).stem not in boards and rel.count("/") > 1:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    wanted = [i for i, e in enumerate(manifest["images"]) if boards is None or _board_of(e["path"]) in boards]
    chunks = [wanted[k::processes] for k in range(max(processes, 1))]
    jobs = [(str(pack), str(dest), c) for c in chunks if c]
    if processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(len(jobs)) as ex:
            results = [r for part in ex.map(_unpack_images, jobs) for r in part]
    else:
        results = [r for job in jobs for r in _unpack_images(job)]
    return {
        "images": len(results),
        "exact": sum(r[1] for r in results),
        "same_as_packer": sum(r[2] for r in results),
        "mode": manifest["mode"],
    }


# ---------------------------------------------------------------- build


def _select_lines(lines: list[str], limit: int | None) -> list[str]:
    return lines if limit is None else lines[:limit]


def build_pack(
    src: Path, out: Path, limit: int | None = None, exact: bool = False, processes: int = 2
) -> dict[str, Any]:
    """Write ``out/deeppcb.twpack`` from a DeepPCB folder; returns the pack's summary."""
    pcb = src / "PCBData" if (src / "PCBData").is_dir() else src
    lists = [n for n in ("trainval.txt", "test.txt") if (pcb / n).is_file()]
    if not lists:
        raise SystemExit(f"{src}: not a DeepPCB folder (no PCBData/trainval.txt)")
    files: dict[str, str] = {}
    jobs: list[tuple[str, str, bool]] = []
    for name in lists:
        lines = _select_lines([ln for ln in (pcb / name).read_text().splitlines() if ln.strip()], limit)
        files[f"PCBData/{name}"] = "".join(ln + "\n" for ln in lines)
        for line in lines:
            image, label = line.split()
            files[f"PCBData/{label}"] = (pcb / label).read_text()
            stem = Path(image).with_suffix("")
            for suffix in ("_test.jpg", "_temp.jpg"):
                rel = f"{stem.as_posix()}{suffix}"
                jobs.append((str(pcb / rel), f"PCBData/{rel}", exact))
    for extra in ("LICENSE", "README.md"):
        if (pcb.parent / extra).is_file():
            files[extra] = (pcb.parent / extra).read_text(errors="replace")
    started = time.monotonic()
    if processes > 1:
        with ProcessPoolExecutor(processes) as ex:
            encoded = list(ex.map(_encode_one, jobs, chunksize=16))
    else:
        encoded = [_encode_one(j) for j in jobs]
    images, blobs, offset = [], [], 0
    bits_total = res_total = 0
    for entry, bits, res in encoded:
        entry["bits"] = [offset, len(bits)]
        offset += len(bits)
        bits_total += len(bits)
        blobs.append(bits)
        if res:
            entry["res"] = [offset, len(res)]
            offset += len(res)
            res_total += len(res)
            blobs.append(res)
        images.append(entry)
    manifest = {
        "format": 1,
        "mode": "exact" if exact else "compact",
        "source": str(src),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": files,
        "images": images,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_pack(out / PACK_NAME, manifest, blobs)
    exact_px = [e["exact_px"] for e in images]
    return {
        "boards": sum(len(t.splitlines()) for n, t in files.items() if n.endswith(tuple(lists))),
        "images": len(images),
        "mode": manifest["mode"],
        "bytes": (out / PACK_NAME).stat().st_size,
        "bits_bytes": bits_total,
        "residual_bytes": res_total,
        "manifest_bytes": (out / PACK_NAME).stat().st_size - bits_total - res_total,
        "images_exact_without_residual": sum(e["exact_px"] == 1.0 for e in images),
        "pixels_exact_without_residual_mean": round(float(np.mean(exact_px)), 5) if exact_px else None,
        "pixels_exact_without_residual_min": min(exact_px) if exact_px else None,
        "encode_s": round(time.monotonic() - started, 1),
    }


def fetch_wheel(out: Path) -> Path:
    """The Ultralytics wheel (pure Python, no dependencies) in ``out``; downloaded once."""
    have = sorted(out.glob("ultralytics-*.whl"))
    want = ULTRALYTICS.split("==")[1]
    if have and f"-{want}-" in have[0].name:
        return have[0]
    for old in have:
        old.unlink()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "py",
            "--platform",
            "any",
            "-d",
            str(out),
            ULTRALYTICS,
        ],
        check=True,
    )
    return next(out.glob("ultralytics-*.whl"))


def travelling_bytes(repo: Path) -> int:
    """Bytes of what a device run carries besides the pack: tracked + untracked, not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    total = 0
    for rel in {r for r in listed if r}:
        p = repo / os.fsdecode(rel)
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def cmd_build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    src = Path(args.src)
    print(f"packing DeepPCB boards from {src} ({'exact' if args.exact else 'compact'}) ...", flush=True)
    summary = build_pack(src, out, args.boards, args.exact, args.processes)
    if args.no_wheel:
        for old in out.glob("ultralytics-*.whl"):
            old.unlink()
        wheel = None
    else:
        wheel = fetch_wheel(out)
    pack_bytes = sum(p.stat().st_size for p in out.iterdir() if p.is_file() and p.name != "PACK.json")
    tree = travelling_bytes(REPO)
    info = {
        "pack": summary,
        "wheel": {"file": wheel.name, "bytes": wheel.stat().st_size} if wheel else None,
        "pack_dir_bytes": pack_bytes,
        "tree_bytes": tree,
        "travel_bytes": tree + pack_bytes,
        "travel_limit_bytes": TRAVEL_LIMIT,
    }
    (out / "PACK.json").write_text(json.dumps(info, indent=2) + "\n")
    mib = 1 << 20
    print(
        f"boards {summary['boards']}, images {summary['images']}: {summary['bytes'] / mib:.2f} MiB "
        f"(bits {summary['bits_bytes'] / mib:.2f}, residual {summary['residual_bytes'] / mib:.2f}, "
        f"manifest {summary['manifest_bytes'] / mib:.2f}); rebuilt without residual: "
        f"{summary['images_exact_without_residual']}/{summary['images']} images bit-exact, "
        f"{summary['pixels_exact_without_residual_mean']} of pixels on average "
        f"(worst image {summary['pixels_exact_without_residual_min']})"
    )
    if wheel:
        print(f"wheel {wheel.name}: {wheel.stat().st_size / mib:.2f} MiB")
    print(
        f"pack {out}: {pack_bytes / mib:.2f} MiB; with the working tree ({tree / mib:.2f} MiB) a device "
        f"run carries {(tree + pack_bytes) / mib:.2f} MiB of {TRAVEL_LIMIT / mib:.0f} MiB"
    )
    if tree + pack_bytes > TRAVEL_LIMIT * 0.95:
        print("WARNING: too close to the device tool's 64 MiB limit: the run would not travel", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- collect


def cmd_collect(args: argparse.Namespace) -> int:
    """Copy a device run's files into registrable run folders (parts joined, hashes checked)."""
    src, dest = Path(args.files_at), Path(args.dest)
    summary = json.loads((src / "summary.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    bad = 0
    for name, model in summary["models"].items():
        if not model.get("files"):
            print(f"{name}: nothing came back ({model.get('status')}: {model.get('error', '')})")
            continue
        run = dest / name
        (run / "weights").mkdir(parents=True, exist_ok=True)
        for rel, meta in model["files"].items():
            target = run / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            parts = meta.get("parts") or [rel]
            with target.open("wb") as fh:
                for part in parts:
                    with (src / name / part).open("rb") as ph:
                        shutil.copyfileobj(ph, fh)
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            if digest != meta["sha256"]:
                print(f"{target}: sha256 {digest} != {meta['sha256']} (damaged in transfer)", file=sys.stderr)
                bad += 1
        if model.get("args"):
            import yaml

            (run / "args.yaml").write_text(yaml.safe_dump(model["args"], sort_keys=False))
        final = model.get("final") or {}
        print(
            f"{run}: epochs {model.get('epochs_done')}, mAP50 {final.get('mAP50')}, "
            f"mAP50-95 {final.get('mAP50-95')}\n  register: twinspect models register {run} --task defect "
            f"--data datasets/deeppcb-ref/data.yaml --name {name}"
        )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("build", "collect", "-h", "--help"):
        argv.insert(0, "build")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the pack (default)")
    b.add_argument(
        "--src",
        default=os.environ.get("TWINSPECT_DEEPPCB", str(REPO.parent / "shared" / "datasets" / "deeppcb-trainval")),
    )
    b.add_argument("--out", default=str(DEFAULT_OUT))
    b.add_argument("--boards", type=int, default=None, help="only the first N boards of each list")
    b.add_argument("--exact", action="store_true", help="also store residuals: lossless, about twice the size")
    b.add_argument("--no-wheel", action="store_true", help="leave the Ultralytics wheel out (tests)")
    b.add_argument("--processes", type=int, default=min(4, os.cpu_count() or 1))
    c = sub.add_parser("collect", help="join and check a device run's files into run folders")
    c.add_argument("files_at", help="the folder the device tool put the files in")
    c.add_argument("dest", help="where the run folders go (e.g. ~/.local/share/twinspect/runs)")
    args = parser.parse_args(argv)
    return cmd_build(args) if args.cmd == "build" else cmd_collect(args)


if __name__ == "__main__":
    sys.exit(main())
