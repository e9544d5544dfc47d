"""The YOLO dataset layout: an atomic writer, the data YAML, and the dataset card.

Layout written under ``out``::

    data.yaml                 path: . ; train/val/test: images/<split>; names
    card.json, CARD.md        counts per class, box sizes, source hash
    images/<split>/<name>     image files (ignored by git)
    labels/<split>/<stem>.txt one ``class cx cy w h`` line per box, normalised

A dataset is written into a temporary sibling folder and renamed into place only
when complete, so a failed import never leaves a half-written dataset behind and
never touches the one already there.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from camera.decode import IMAGE_SUFFIXES
from inspection.core.errors import DatasetError

SPLITS = ("train", "val", "test")


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` as PNG: how reference inputs are stored (JPEG's chroma subsampling would mix their planes)."""
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DatasetError("could not encode a reference image as PNG")
    return bytes(buf.tobytes())


@dataclass(frozen=True)
class Box:
    """One labelled box in image pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    class_id: int


@dataclass
class _SplitStats:
    images: int = 0
    background_images: int = 0
    boxes: Counter[str] = field(default_factory=Counter)
    widths: list[float] = field(default_factory=list)
    heights: list[float] = field(default_factory=list)


class YoloDatasetWriter:
    """Writes a YOLO dataset into a temporary folder, then swaps it into place."""

    def __init__(self, out: Path, names: tuple[str, ...], extra_yaml: dict[str, Any] | None = None) -> None:
        self.out = out.resolve()
        self.names = names
        self.extra_yaml = dict(extra_yaml or {})
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        self._stats: dict[str, _SplitStats] = {}

    def add(
        self,
        split: str,
        name: str,
        image_bytes: bytes | None,
        size: tuple[int, int],
        boxes: list[Box],
        source: Path | None = None,
    ) -> None:
        """Add one image (its bytes, or a source file to copy) with its boxes.

        ``size`` is (width, height) in pixels; boxes are in pixels and converted to
        normalised centre/size form.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        img_dir = self._tmp / "images" / split
        lbl_dir = self._tmp / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        if source is not None:
            shutil.copyfile(source, img_dir / name)
        elif image_bytes is not None:
            (img_dir / name).write_bytes(image_bytes)
        else:
            raise ValueError("either image_bytes or source is needed")
        w, h = size
        lines = []
        stats = self._stats.setdefault(split, _SplitStats())
        stats.images += 1
        if not boxes:
            stats.background_images += 1
        for b in boxes:
            bw, bh = b.x2 - b.x1, b.y2 - b.y1
            cx, cy = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2
            lines.append(f"{b.class_id} {cx / w:.6f} {cy / h:.6f} {bw / w:.6f} {bh / h:.6f}")
            stats.boxes[self.names[b.class_id]] += 1
            stats.widths.append(bw)
            stats.heights.append(bh)
        (lbl_dir / (Path(name).stem + ".txt")).write_text("".join(line + "\n" for line in lines))

    def link(self, split: str, name: str, image: Path, label: Path | None) -> None:
        """Add an image of another dataset by symbolic links to its file and its label file (no copy)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        for sub, src, dst in (("images", image, name), ("labels", label, Path(name).stem + ".txt")):
            folder = self._tmp / sub / split
            folder.mkdir(parents=True, exist_ok=True)
            if src is not None and src.is_file():
                (folder / dst).symlink_to(src.resolve())
            else:
                (folder / dst).write_text("")
        self._stats.setdefault(split, _SplitStats()).images += 1

    def commit(self, source_hash: str, extra: dict[str, Any]) -> dict[str, Any]:
        """Write data.yaml and the card, then move the dataset into place atomically."""
        try:
            card = self._card(source_hash, extra)
            splits = [s for s in SPLITS if s in self._stats]
            data = {
                "path": ".",
                **{s: f"images/{s}" for s in splits},
                "nc": len(self.names),
                "names": dict(enumerate(self.names)),
                **self.extra_yaml,
            }
            (self._tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
            (self._tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
            (self._tmp / "CARD.md").write_text(render_card_markdown(card))
            backup = None
            if self.out.exists():
                backup = self.out.with_name(f".{self.out.name}.old")
                shutil.rmtree(backup, ignore_errors=True)
                self.out.rename(backup)
            self._tmp.rename(self.out)
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
            return card
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove the temporary folder; the dataset already in place is untouched."""
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _card(self, source_hash: str, extra: dict[str, Any]) -> dict[str, Any]:
        splits: dict[str, Any] = {}
        all_w: list[float] = []
        all_h: list[float] = []
        for name, st in self._stats.items():
            splits[name] = {
                "images": st.images,
                "background_images": st.background_images,
                "boxes": sum(st.boxes.values()),
                "boxes_per_class": {n: st.boxes.get(n, 0) for n in self.names},
            }
            all_w += st.widths
            all_h += st.heights
        return {
            "names": list(self.names),
            "source_sha256": source_hash,
            "splits": splits,
            "box_sizes": box_size_distribution(all_w, all_h),
            **extra,
        }


def box_size_distribution(widths: list[float], heights: list[float]) -> dict[str, Any]:
    """Percentiles of box width, height and side (sqrt area), and COCO size buckets."""
    if not widths:
        return {"count": 0}
    w = np.asarray(widths, dtype=float)
    h = np.asarray(heights, dtype=float)
    side = np.sqrt(w * h)
    qs = (0, 10, 50, 90, 100)

    def pct(a: np.ndarray) -> dict[str, float]:
        return {f"p{q}": round(float(np.percentile(a, q)), 1) for q in qs}

    area = w * h
    return {
        "count": int(w.size),
        "width_px": pct(w),
        "height_px": pct(h),
        "side_px": pct(side),
        "coco_buckets": {
            "small(<32^2)": int((area < 32**2).sum()),
            "medium": int(((area >= 32**2) & (area < 96**2)).sum()),
            "large(>=96^2)": int((area >= 96**2).sum()),
        },
    }


def render_card_markdown(card: dict[str, Any]) -> str:
    """A human-readable dataset card."""
    names = card["names"]
    lines = [f"# Dataset card: {card.get('name', 'dataset')}", ""]
    for key in ("source", "source_sha256", "split_rule", "created_at"):
        if key in card:
            lines.append(f"- {key}: `{card[key]}`")
    lines += [
        "",
        "| split | images | background | boxes | " + " | ".join(names) + " |",
        "| --- " * (4 + len(names)) + "|",
    ]
    for split, st in card["splits"].items():
        per = " | ".join(str(st["boxes_per_class"][n]) for n in names)
        lines.append(f"| {split} | {st['images']} | {st['background_images']} | {st['boxes']} | {per} |")
    sizes = card["box_sizes"]
    if sizes.get("count"):
        lines += ["", "Box sizes (pixels):", ""]
        for key in ("width_px", "height_px", "side_px"):
            lines.append(f"- {key}: " + ", ".join(f"{k} {v}" for k, v in sizes[key].items()))
        lines.append("- COCO buckets: " + ", ".join(f"{k} {v}" for k, v in sizes["coco_buckets"].items()))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DatasetSpec:
    """A data YAML resolved to absolute folders."""

    yaml_path: Path
    root: Path
    names: tuple[str, ...]
    splits: dict[str, Path]
    input: str = "image"  # "reference": 3-plane board/golden/difference images (inspection.reference.planes)

    def images(self, split: str) -> list[Path]:
        """Image files of one split, sorted by name."""
        folder = self.split_dir(split)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: the '{split}' split has no image folder{_not_imported(self.root)}")
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def split_dir(self, split: str) -> Path:
        if split not in self.splits:
            raise DatasetError(f"{self.yaml_path}: has no '{split}' split (it has: {', '.join(self.splits)})")
        return self.splits[split]

    def labels_for(self, image: Path) -> Path:
        """The YOLO label file of an image (images/... -> labels/...)."""
        parts = list(image.parts)
        idx = len(parts) - 1 - parts[::-1].index("images")
        parts[idx] = "labels"
        return Path(*parts).with_suffix(".txt")

    def read_labels(self, image: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N,4 xyxy pixels) and class ids (N,) of one image."""
        path = self.labels_for(image)
        rows = np.loadtxt(path, ndmin=2) if path.exists() and path.stat().st_size else np.zeros((0, 5))
        w, h = size
        cls = rows[:, 0].astype(int)
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        return xyxy.astype(np.float32), cls

    def ultralytics_yaml(self, dest: Path) -> Path:
        """Write a copy of the data YAML with an absolute ``path`` for Ultralytics."""
        data = {
            "path": str(self.root),
            **{k: str(v) for k, v in self.splits.items()},
            "nc": len(self.names),
            "names": dict(enumerate(self.names)),
            "input": self.input,
        }
        dest.write_text(yaml.safe_dump(data, sort_keys=False))
        return dest


IMPORT_COMMANDS = {
    "deeppcb": "twinspect datasets import deeppcb DEEPPCB_FOLDER --out {root}",
    "synthline": "twinspect datasets synth-line --boards DEEPPCB_FOLDER --out {root}",
}


def _not_imported(root: Path) -> str:
    """Why a described dataset has no images here, and the command that makes them (from its card)."""
    import json

    try:
        name = str(json.loads((root / "card.json").read_text()).get("name", ""))
    except (OSError, ValueError):
        return ""
    command = IMPORT_COMMANDS.get(name.split("-")[0])
    if command is None:
        return f" (dataset {name!r} is described here but its images are not imported)"
    extra = " --input reference" if name.endswith("-ref") else ""
    return f": the dataset is described here but not imported yet; run {command.format(root=root)}{extra}"


def load_data_yaml(path: Path) -> DatasetSpec:
    """Read a data YAML (ours or any Ultralytics-style one) and resolve its folders."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: data YAML not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict) or "names" not in data:
        raise DatasetError(f"{path}: not a data YAML (no 'names' field)")
    names_raw = data["names"]
    if isinstance(names_raw, dict):
        names = tuple(str(names_raw[k]) for k in sorted(names_raw, key=int))
    elif isinstance(names_raw, list):
        names = tuple(str(n) for n in names_raw)
    else:
        raise DatasetError(f"{path}: field 'names' must be a list or a mapping")
    root = Path(data.get("path") or ".")
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    splits = {}
    for split in SPLITS:
        if data.get(split):
            folder = Path(data[split])
            splits[split] = folder if folder.is_absolute() else root / folder
    if not splits:
        raise DatasetError(f"{path}: no train/val/test split listed")
    kind = str(data.get("input", "image"))
    if kind not in ("image", "reference"):
        raise DatasetError(f"{path}: field 'input' must be 'image' or 'reference', got {kind!r}")
    return DatasetSpec(yaml_path=path.resolve(), root=root, names=names, splits=splits, input=kind)
