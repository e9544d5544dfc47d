"""The active models (defect, part) with their model cards."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Depends, Request

from api.auth import require
from api.schemas_qa import ModelOut, ModelsOut
from api.tokens import Role
from inspection.core.errors import ModelError
from inspection.inference.cards import CARD, resolve_model_dir

router = APIRouter(prefix="/api/v1", tags=["models"])


def model_out(role: str, weights: Path) -> ModelOut:
    """The model at ``weights`` with its card; a bare weights file has no card."""
    try:
        card = json.loads((resolve_model_dir(weights) / CARD).read_text(), parse_constant=lambda _: None)
    except (ModelError, OSError, ValueError):
        return ModelOut(role=role, name=Path(weights).stem, version="unregistered", path=str(weights), card=None)
    return ModelOut(
        role=role,
        name=str(card.get("name", Path(weights).stem)),
        version=str(card.get("version", "")),
        path=str(weights),
        card=card,
    )


@router.get(
    "/models",
    response_model=ModelsOut,
    dependencies=[Depends(require(Role.QA, Role.ML))],
    summary="The active models and their model cards",
)
def models(request: Request) -> ModelsOut:
    dirs = request.app.state.services.model_dirs
    return ModelsOut(models=[model_out(role, path) for role, path in sorted(dirs.items())])
