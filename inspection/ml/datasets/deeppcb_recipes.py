"""One recipe per DeepPCB board: each tested board is its own product, its template the golden.

A real line has one recipe for the whole line; the simulated DeepPCB line shows boards of
hundreds of products, so each board ``<id>_test.jpg`` gets the recipe ``deeppcb-<id>``
whose golden is that board's ``<id>_temp.jpg`` (DeepPCB's aligned defect-free template).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from inspection.core.errors import DatasetError
from inspection.ml.datasets.boards import PRODUCT_PREFIX, deeppcb_product
from inspection.ml.datasets.deeppcb import find_pcbdata, read_list
from inspection.reference.recipe_store import RecipeDraft, RecipeStore, draft_recipe
from inspection.reference.recipes import RecipeError


def _templates(boards_dir: Path, list_name: str) -> list[tuple[str, Path]]:
    """(board id, template path) of every board of the list, in list order."""
    try:
        pcb = find_pcbdata(boards_dir)
    except DatasetError as error:
        raise RecipeError(str(error)) from None
    if not (pcb / list_name).is_file():
        raise RecipeError(f"{pcb / list_name}: no such list file")
    try:
        entries = read_list(pcb, list_name)
    except (DatasetError, OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{pcb / list_name}: {error}") from None
    out = []
    for image, _label, _lineno in entries:
        board_id = image.stem.removesuffix("_test")
        out.append((board_id, image.with_name(f"{board_id}_temp.jpg")))
    return out


def register_deeppcb_recipes(
    store: RecipeStore, boards_dir: Path | str, list_name: str = "trainval.txt", actor: str = "deeppcb-import"
) -> int:
    """Register ``deeppcb-<id>`` for every board of ``list_name``; returns how many were added or changed.

    Idempotent and cheap to repeat: a board whose recipe already holds the same golden
    (same sha256) is skipped without decoding anything. Every template is checked before
    anything is written; a missing or corrupt one is an error naming its file (the first
    one, and how many more). A board whose template changed is replaced (same size only).
    """
    known = store.shas(PRODUCT_PREFIX)
    drafts: dict[str, RecipeDraft] = {}
    problems: list[str] = []
    for board_id, template in _templates(Path(boards_dir), list_name):
        name = deeppcb_product(board_id)
        if name in drafts:  # listed twice
            continue
        try:
            data = template.read_bytes()
        except OSError as error:
            problems.append(f"{template}: cannot read the template ({error.strerror or error})")
            continue
        if known.get(name) == hashlib.sha256(data).hexdigest():
            continue
        try:
            drafts[name] = draft_recipe(name, data, description=f"DeepPCB board {board_id}", where=str(template))
        except RecipeError as error:
            problems.append(str(error))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RecipeError(problems[0] + more)
    store.add_many(list(drafts.values()), actor=actor, replace=True)
    return len(drafts)
