"""Changing the recipe a running line inspects: the engine switches golden, the event log and twin follow.

Used by ``PUT /api/v1/lines/{line_id}/recipe`` and by a recipe replacement (the line's
twin must show the golden its boards are now compared with). The change lasts while the
engine runs; ``line.recipe`` in twinspect.yaml is what a restart starts with (and a
start with another recipe than the twin's emits ``line.recipe_changed`` too).
"""

from __future__ import annotations

from api.errors import Conflict, NotFound
from api.schemas_recipes import LineRecipeOut
from api.services import EngineView, Services
from inspection.reference.goldens import GoldenFiles
from inspection.reference.recipe_store import RecipeStore
from inspection.reference.recipes import Recipe
from sync.drafts import line_recipe_changed, source_uri


def running_line(services: Services) -> tuple[EngineView, str]:
    """The engine and the id of the line it runs; Conflict when this process runs none (a hub)."""
    engine = services.engine
    if engine is None:
        raise Conflict(
            "this process runs no inspection line (a hub?): change the recipe on the line's edge, "
            "or set line.recipe in its twinspect.yaml"
        )
    return engine, str(engine.status()["line_id"])


def recipe_store(services: Services) -> RecipeStore:
    if services.recipes is None:
        raise NotFound("this process keeps no recipes")
    return services.recipes


def golden_files(services: Services) -> GoldenFiles:
    """Where this process keeps golden images: its recipes' folder, or (a hub) the goldens its edges sent."""
    if services.recipes is not None:
        return services.recipes.files
    if services.goldens is None:
        raise NotFound("this process keeps no golden images")
    return services.goldens


def _announce(
    services: Services, line_id: str, recipe: Recipe | None, previous: str | None, changed_by: str
) -> int | None:
    """Append line.recipe_changed (committed before this returns); its offset, or None without an event log."""
    sync = services.sync
    if sync is None:
        return None
    draft = line_recipe_changed(
        line_id,
        source_uri(sync.settings.edge_id),
        recipe.name if recipe else None,
        previous,
        recipe.golden_sha256 if recipe else None,
        changed_by,
    )
    return sync.log.append([draft])[0].offset


def change_line_recipe(services: Services, line_id: str, name: str | None, changed_by: str) -> LineRecipeOut:
    """Switch the running line to recipe ``name`` (None: no recipe for the whole line) and record the change."""
    engine, running = running_line(services)
    if line_id != running:
        raise NotFound(f"line {line_id!r}: this process runs line {running!r}")
    recipe = recipe_store(services).get(name) if name is not None else None  # RecipeNotFound: 404
    previous = services.sync.twins.line_recipe(line_id)[0] if services.sync is not None else None
    engine.set_line_recipe(name)
    offset = _announce(services, line_id, recipe, previous, changed_by)
    return LineRecipeOut(
        line_id=line_id,
        recipe=name,
        previous=previous,
        golden_sha256=recipe.golden_sha256 if recipe else None,
        changed_by=changed_by,
        offset=offset,
    )


def follow_replaced_recipe(services: Services, recipe: Recipe, changed_by: str) -> int | None:
    """After ``recipe`` was replaced: when the running line uses it, tell the twin its new golden (an offset)."""
    if services.engine is None or services.sync is None:
        return None
    _, line_id = running_line(services)
    name, sha = services.sync.twins.line_recipe(line_id)
    if name != recipe.name or sha == recipe.golden_sha256:
        return None
    return _announce(services, line_id, recipe, name, changed_by)
