"""A running line's settings that can change while it runs: its recipe (product)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from api.auth import require
from api.line_recipe import change_line_recipe
from api.schemas_recipes import LineRecipeIn, LineRecipeOut
from api.tokens import Principal, Role

router = APIRouter(prefix="/api/v1", tags=["lines"])


@router.put(
    "/lines/{line_id}/recipe",
    response_model=LineRecipeOut,
    dependencies=[Depends(require(Role.ML))],
    summary="Compare every board of the running line with this recipe's golden (emits line.recipe_changed)",
)
def put_line_recipe(
    line_id: Annotated[str, Path(description="The line this process runs.")], body: LineRecipeIn, request: Request
) -> LineRecipeOut:
    principal: Principal = request.state.principal
    return change_line_recipe(request.app.state.services, line_id, body.recipe, principal.name)
