"""The model registry's read side: find a registered model's folder and read its card.

Serving, eval and export read entries; only the publish side (:mod:`inspection.ml.registry`)
writes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inspection.core.errors import ModelError

CARD = "card.json"


def resolve_model_dir(path: Path) -> Path:
    """A registry entry folder from a folder, a version pointer file, or a file inside one."""
    path = Path(path)
    if path.is_file() and path.suffix == "" and (path.parent / path.read_text().strip()).is_dir():
        return path.parent / path.read_text().strip()
    if path.is_dir() and (path / CARD).is_file():
        return path
    if path.is_file() and (path.parent / CARD).is_file():
        return path.parent
    raise ModelError(f"{path}: not a registered model (no {CARD} beside it)")


def registry_folder(weights: Path) -> Path:
    """The registry a configured model lives in: the folder holding its entry (weights/NAME-vN), whether
    ``weights`` names the entry, its version pointer (weights/NAME) or a file inside it."""
    try:
        return resolve_model_dir(weights).parent
    except ModelError:
        weights = Path(weights)
        return weights.parent if weights.suffix == "" else weights.parent.parent


def read_card(model_dir: Path) -> dict[str, Any]:
    return json.loads((resolve_model_dir(model_dir) / CARD).read_text())
