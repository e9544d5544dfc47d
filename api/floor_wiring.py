"""Wire ``floor`` (OPC UA, reject gate, Sparkplug B, SPC, belt model) to a running engine and the API's paths.

The OPC UA server's methods go the API's way: ``SelectRecipe`` is ``PUT /api/v1/lines/{id}/recipe``
(``change_line_recipe``: the engine switches golden, ``line.recipe_changed`` records who), users
are twinspect tokens (the user name is the token's name, the password the token), and
``GetResultById`` falls back to the stored inspections.
"""

from __future__ import annotations

from asyncua import ua

from api.errors import Conflict, NotFound
from api.line_recipe import change_line_recipe
from api.services import Services
from api.settings import Settings
from floor.opcua.server import LineHooks, MethodRefused
from floor.results import Result
from floor.service import FloorConfig, FloorService
from inspection.core.errors import InspectionError
from inspection.pipeline.engine import Engine
from inspection.reference.recipes import RecipeNotFound
from inspection.store.errors import StoreError
from sync.service import SyncService


def floor_config(settings: Settings) -> FloorConfig:
    return FloorConfig(
        settings.opcua, settings.gate, settings.sparkplug, settings.spc, settings.belt, settings.data_dir
    )


def _hooks(services: Services, engine: Engine, floor: FloorService) -> LineHooks:
    tokens, line_id = services.tokens, engine.config.line_id

    def verify(user: str, password: str) -> tuple[str, str] | None:
        principal = tokens.verify(password) if tokens is not None else None
        if principal is None or principal.name != user:
            return None
        return principal.name, principal.role.value

    def select_recipe(recipe: str, who: str) -> str:
        try:
            out = change_line_recipe(services, line_id, recipe, who)
        except (RecipeNotFound, NotFound) as error:
            raise MethodRefused(ua.StatusCodes.BadNotFound, str(error)) from None
        except (Conflict, InspectionError) as error:
            raise MethodRefused(ua.StatusCodes.BadInvalidState, str(error)) from None
        return f"line {out.line_id} now inspects {out.recipe} (was {out.previous})"

    def lookup(result_id: str) -> Result | None:
        store = services.inspections
        if store is None:
            return None
        try:
            item = store.get(result_id)
        except (StoreError, LookupError, ValueError):
            return None
        return Result(
            result_id=item.part_id,
            part_id=item.part_id,
            inspection_id=item.id,
            line_id=item.line_id,
            camera_id=item.camera_id,
            verdict=item.outcome.value,
            defect_classes=tuple(b.class_name for b in item.live_boxes),
            capture_time=item.captured_at.isoformat().replace("+00:00", "Z"),
            recipe=item.recipe,
            offset=0,
            sequence=0,
        )

    return LineHooks(
        verify=verify,
        select_recipe=select_recipe,
        reset=floor.reset,
        lookup=lookup,
        status=engine.status,
        running=lambda: floor.running,
        twin=floor.twin,
    )


def build_floor(settings: Settings, engine: Engine, sync: SyncService | None, services: Services) -> FloorService:
    """The enabled outputs around ``engine`` (none started yet); ``services.floor`` is set to it."""
    floor = FloorService.build(floor_config(settings), engine, sync, lambda f: _hooks(services, engine, f))
    services.floor = floor
    return floor
