"""The active models (defect, part) with their model cards; model delivery per line (states, promote, shadow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from api.auth import Principal, require
from api.errors import Forbidden, NotFound
from api.model_desk import GateRefused, ModelDesk, role_of
from api.schemas_models import ChangeOut, ChangeResultOut, ModelLineOut, PromoteIn, RollbackIn, ShadowIn, VersionOut
from api.schemas_qa import ModelOut, ModelsOut
from api.tokens import Role
from inspection.core.errors import ModelError
from inspection.inference.cards import CARD, resolve_model_dir
from inspection.ml.registry import parse_model_ref
from inspection.store import Change, Version

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
    services = request.app.state.services
    dirs = dict(services.model_dirs)
    for desk in (services.model_desk, services.part_desk):
        active = desk.active() if desk is not None else None
        if desk is not None and active is not None:
            dirs[desk.role] = desk.folder(active)  # what the line serves now (a promotion moved it)
    return ModelsOut(models=[model_out(role, path) for role, path in sorted(dirs.items())])


def _desk(request: Request, line_id: str, role: str = "defect") -> ModelDesk:
    services = request.app.state.services
    desk: ModelDesk | None = services.model_desk if role == "defect" else services.part_desk
    if desk is None:
        raise NotFound("this process delivers no models (it runs no inspection line)")
    if desk.line_id != line_id:
        raise NotFound(f"line {line_id!r}: this process runs line {desk.line_id!r}")
    return desk


def _desk_of(request: Request, line_id: str, model: Version) -> ModelDesk:
    """The desk of the role ``model`` has (its card's task)."""
    defect = _desk(request, line_id)
    return _desk(request, line_id, role_of(defect.parts.registry, model))


def _principal(request: Request) -> Principal:
    return request.state.principal  # type: ignore[no-any-return]


def change_out(c: Change | None) -> ChangeOut | None:
    if c is None:
        return None
    return ChangeOut(
        id=c.id,
        line_id=c.line_id,
        role=c.role,
        action=c.action,
        model=str(c.model),
        previous=c.previous,
        who=c.who,
        why=c.why,
        at=c.at.isoformat(),
        forced=c.forced,
        announced=c.announced,
    )


@router.get(
    "/models/lines/{line_id}",
    response_model=ModelLineOut,
    dependencies=[Depends(require(Role.QA, Role.ML))],
    summary="Every registered version with its state on the line, and the line's model history",
)
def model_line(request: Request, line_id: str, role: Literal["defect", "part"] = Query("defect")) -> ModelLineOut:
    desk = _desk(request, line_id, role)
    desk.sync_registry()
    served = desk.served()
    active, shadow = desk.active(), desk.shadow()
    return ModelLineOut(
        line_id=line_id,
        role=role,
        active=str(active) if active else None,
        shadow=str(shadow) if shadow else None,
        served=f"{served.name}:{served.version}" if served else None,
        versions=[VersionOut(**v) for v in desk.listing()],
        history=[c for c in (change_out(x) for x in desk.changes()) if c is not None],
        shadow_run=desk.shadow_runner.figures() if desk.shadow_runner else None,
        watch=desk.watch(),
    )


def _ref(text: str) -> Version:
    return Version(*parse_model_ref(text))


@router.get(
    "/models/lines",
    dependencies=[Depends(require(Role.QA, Role.ML))],
    summary="The lines this process delivers models to, and the roles (defect, part) delivered on each",
)
def model_lines(request: Request) -> dict[str, Any]:
    services = request.app.state.services
    desks = [d for d in (services.model_desk, services.part_desk) if d is not None]
    lines = sorted({d.line_id for d in desks})
    roles = {line: [d.role for d in desks if d.line_id == line] for line in lines}
    return {"lines": lines, "roles": roles}


@router.get(
    "/models/lines/{line_id}/shadow-report",
    dependencies=[Depends(require(Role.QA, Role.ML))],
    summary="The active and the shadow model side by side on the boards both saw, against reviewed truth",
)
def shadow_report(request: Request, line_id: str, model: str | None = None) -> dict[str, Any]:
    desk = _desk(request, line_id)
    return desk.shadow_report(_ref(model) if model else None)


@router.get(
    "/models/lines/{line_id}/review-order",
    dependencies=[Depends(require(Role.QA, Role.ML))],
    summary="Unreviewed boards by expected information (model uncertainty, disagreement with the shadow)",
)
def review_order(request: Request, line_id: str, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    desk = _desk(request, line_id)
    return {"line_id": line_id, "items": desk.review_order(limit)}


@router.post(
    "/models/lines/{line_id}/promote",
    response_model=ChangeResultOut,
    dependencies=[Depends(require(Role.ML))],
    summary="Gate a candidate against the active model and serve it when it passes (force: admin, audited)",
    responses={409: {"description": "The gate refused it (with both models' figures), or a promotion runs."}},
)
def promote(request: Request, line_id: str, body: PromoteIn) -> ChangeResultOut | JSONResponse:
    from api.model_gate import line_gate

    desk = _desk_of(request, line_id, _ref(body.model))
    who = _principal(request)
    if body.force and who.role is not Role.ADMIN:
        raise Forbidden("force: only the admin role may promote past the gate")
    services = request.app.state.services
    gate = line_gate(desk.parts, services.inspections)
    try:
        result = desk.promote(_ref(body.model), who.name, body.reason, gate, body.force)
    except GateRefused as refused:
        content = {"detail": str(refused), "error": "GateRefused", "gate": refused.result.as_dict()}
        return JSONResponse(content, status_code=409)
    return ChangeResultOut(change=change_out(desk.changes()[0]), gate=result.as_dict())


@router.post(
    "/models/lines/{line_id}/rollback",
    response_model=ChangeResultOut,
    dependencies=[Depends(require(Role.ML))],
    summary="Serve the version active before the current one again (hot swap)",
)
def rollback(request: Request, line_id: str, body: RollbackIn) -> ChangeResultOut:
    desk = _desk(request, line_id, body.role)
    return ChangeResultOut(change=change_out(desk.rollback(_principal(request).name, body.reason)))


@router.post(
    "/models/lines/{line_id}/shadow",
    response_model=ChangeResultOut,
    dependencies=[Depends(require(Role.ML))],
    summary="Run a candidate beside the active model (off the critical path, stored apart); null stops it",
)
def shadow(request: Request, line_id: str, body: ShadowIn) -> ChangeResultOut:
    who = _principal(request).name
    if body.model is None:
        return ChangeResultOut(change=change_out(_desk(request, line_id).stop_shadow(who, body.reason)))
    model = _ref(body.model)
    return ChangeResultOut(change=change_out(_desk_of(request, line_id, model).start_shadow(model, who, body.reason)))
