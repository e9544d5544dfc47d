"""RecipeStore: recipes in the twinspect database, their golden images in a content-addressed folder.

    store = RecipeStore(engine, data_dir / "goldens")     # engine: open_database(...), same as inspections
    recipe = store.add("pcb-a", jpeg_bytes, masks=(RegionMask(x1=0, y1=0, x2=40, y2=20, label="sticker"),))
    golden = store.golden("pcb-a")                         # decoded grey + ignore mask, cached (GoldenBook)

Everything is checked before anything is written (name, a golden that decodes completely,
masks inside it, the description; an existing name, or a replacement golden of another
size, is refused unless asked for). The golden file is then stored durably, and only then
the row that names it is committed, so a crash leaves at most an unreferenced file, never
a recipe without its golden. Golden files are never removed: replacing a recipe keeps
the old golden for the inspections that name it (``golden_bytes(sha)``).

``golden(name)`` reads the recipe's row (one primary-key lookup) and serves the decoded
image from a bounded LRU cache keyed by its sha, masks and alignment settings, so a
replacement, even by another process, is seen at the next call. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, delete, exc, insert, select, update
from sqlalchemy.orm import Session

from inspection.reference.goldens import CheckedGolden, GoldenFiles, check_golden, check_sha256, decode_grey
from inspection.reference.recipes import (
    MAX_DESCRIPTION,
    AlignSettings,
    Golden,
    GoldenSizeMismatch,
    Recipe,
    RecipeError,
    RecipeExists,
    RecipeNotFound,
    RegionMask,
    check_masks,
    check_name,
    golden_from_image,
)
from inspection.store.db import write_bind
from inspection.store.errors import StoreUnavailableError
from inspection.store.models import RecipeRow

DEFAULT_CACHE = 64


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, eq=False)
class RecipeDraft:
    """A recipe checked and ready to store: its values plus the golden file's bytes."""

    name: str
    golden: CheckedGolden
    masks: tuple[RegionMask, ...]
    align: AlignSettings
    description: str
    where: str = "golden"  # how errors name the golden (its file)


def draft_recipe(
    name: str,
    golden_bytes: bytes,
    masks: Sequence[RegionMask] = (),
    align: AlignSettings | None = None,
    description: str = "",
    where: str = "golden",
) -> RecipeDraft:
    """Check every value of a new recipe; RecipeError naming the field (or ``where``, the golden's file) if bad."""
    check_name(name)
    masks = tuple(masks)
    if len(description) > MAX_DESCRIPTION:
        raise RecipeError(f"description: at most {MAX_DESCRIPTION} characters, got {len(description)}")
    if "\x00" in description or any("\x00" in m.label for m in masks):
        raise RecipeError("description or mask label: contains a NUL character")
    golden = check_golden(golden_bytes, where)
    check_masks(masks, golden.width, golden.height)
    return RecipeDraft(name, golden, masks, align or AlignSettings(), description, where)


def _recipe(row: RecipeRow) -> Recipe:
    try:
        masks = tuple(RegionMask.model_validate(m) for m in row.masks)
        align = AlignSettings.model_validate(row.align)
    except ValidationError as error:
        raise RecipeError(
            f"recipe {row.name!r}: stored masks or alignment settings are invalid: {error.errors()[0]['msg']}"
        ) from None
    return Recipe(
        name=row.name,
        golden_sha256=row.golden_sha256,
        width=row.width,
        height=row.height,
        masks=masks,
        align=align,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _values(draft: RecipeDraft, actor: str, now: datetime) -> dict[str, Any]:
    return {
        "name": draft.name,
        "golden_sha256": draft.golden.sha256,
        "width": draft.golden.width,
        "height": draft.golden.height,
        "masks": [m.model_dump() for m in draft.masks],
        "align": draft.align.model_dump(),
        "description": draft.description,
        "updated_at": now,
        "updated_by": actor,
    }


class RecipeStore:
    """Recipes and their golden images; implements ``GoldenBook`` for the engine. See the module docstring."""

    def __init__(
        self,
        engine: Engine,
        goldens_dir: Path | str,
        *,
        cache_size: int = DEFAULT_CACHE,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self.engine = engine
        self.files = GoldenFiles(goldens_dir)
        self.cache_size = cache_size
        self._write_engine = write_bind(engine)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[tuple[Any, ...], Golden]] = OrderedDict()

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        where = self.engine.url.render_as_string(hide_password=True)
        try:
            with (
                Session(self._write_engine if write else self.engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                yield session
        except exc.IntegrityError as error:  # another writer added the same name between our check and insert
            raise RecipeExists(f"recipe already stored in {where}: {str(error.orig).strip()}") from error
        except exc.OperationalError as error:
            raise StoreUnavailableError(f"database {where} failed: {str(error.orig).strip()}") from error

    # writing ---------------------------------------------------------------------------------------
    def add(
        self,
        name: str,
        golden_bytes: bytes,
        masks: Sequence[RegionMask] = (),
        align: AlignSettings | None = None,
        description: str = "",
        actor: str = "",
        replace: bool = False,
        *,
        allow_resize: bool = False,
        where: str = "golden",
    ) -> Recipe:
        """Add a recipe, or replace one with ``replace``; ``where`` names the golden in errors (its file).

        A replacement golden of another size than the recipe's is refused (another product)
        unless ``allow_resize``. Nothing is written unless every check passes.
        """
        draft = draft_recipe(name, golden_bytes, masks, align, description, where)
        return self.add_many([draft], actor=actor, replace=replace, allow_resize=allow_resize)[0]

    def add_many(
        self, drafts: Sequence[RecipeDraft], *, actor: str = "", replace: bool = False, allow_resize: bool = False
    ) -> list[Recipe]:
        """Store checked drafts: every golden file first, then all rows in one transaction."""
        if not drafts:
            return []
        names = [d.name for d in drafts]
        if len(set(names)) != len(names):
            raise RecipeError(f"name: given twice in one call: {sorted({n for n in names if names.count(n) > 1})}")
        self._check_existing(drafts, self._rows(names), replace, allow_resize)
        self.files.put_many(d.golden for d in drafts)
        now = self._clock()
        with self._session(write=True) as session:
            # again inside the write transaction (SQLite: under its write lock; PostgreSQL: a racing insert of the
            # same name fails on the primary key and is reported as RecipeExists)
            existing = self._rows(names, session)
            self._check_existing(drafts, existing, replace, allow_resize)
            new = [
                {**_values(d, actor, now), "created_at": now, "created_by": actor}
                for d in drafts
                if d.name not in existing
            ]
            changed = [_values(d, actor, now) for d in drafts if d.name in existing]
            if new:
                session.execute(insert(RecipeRow), new)
            if changed:
                session.execute(update(RecipeRow), changed)
            rows = self._rows(names, session)
            stored = [_recipe(rows[n]) for n in names]
        self._forget(names)
        return stored

    @staticmethod
    def _check_existing(
        drafts: Sequence[RecipeDraft], existing: dict[str, RecipeRow], replace: bool, allow_resize: bool
    ) -> None:
        for d in drafts:
            row = existing.get(d.name)
            if row is None:
                continue
            if not replace:
                raise RecipeExists(f"name {d.name!r}: a recipe of that name exists; replace it explicitly")
            size, old = (d.golden.width, d.golden.height), (row.width, row.height)
            if size != old and not allow_resize:
                raise GoldenSizeMismatch(
                    f"{d.where}: {size[0]}x{size[1]} image for recipe {d.name!r}, whose golden is {old[0]}x{old[1]}: "
                    "another product? Allow a new size explicitly to replace it anyway"
                )

    def delete(self, name: str) -> None:
        """Remove a recipe (its golden file stays: inspections still name it)."""
        with self._session(write=True) as session:
            if session.get(RecipeRow, name) is None:
                raise RecipeNotFound(f"recipe {name!r}: no such recipe")
            session.execute(delete(RecipeRow).where(RecipeRow.name == name))
        self._forget([name])

    # reading ---------------------------------------------------------------------------------------
    def _rows(self, names: Sequence[str], session: Session | None = None) -> dict[str, RecipeRow]:
        if session is None:
            with self._session() as own:
                return self._rows(names, own)
        out: dict[str, RecipeRow] = {}
        for start in range(0, len(names), 500):  # bounded IN lists
            chunk = list(names[start : start + 500])
            stmt = select(RecipeRow).where(RecipeRow.name.in_(chunk)).execution_options(populate_existing=True)
            out.update((r.name, r) for r in session.scalars(stmt))
        return out

    def get(self, name: str) -> Recipe:
        with self._session() as session:
            row = session.get(RecipeRow, name)
            if row is None:
                raise RecipeNotFound(f"recipe {name!r}: no such recipe")
            return _recipe(row)

    def list(self, prefix: str = "") -> list[Recipe]:
        """Every recipe (whose name starts with ``prefix``), by name."""
        stmt = select(RecipeRow).order_by(RecipeRow.name)
        if prefix:
            stmt = stmt.where(RecipeRow.name.startswith(prefix, autoescape=True))
        with self._session() as session:
            return [_recipe(r) for r in session.scalars(stmt)]

    def shas(self, prefix: str = "") -> dict[str, str]:
        """name -> golden sha256 of every recipe (whose name starts with ``prefix``), without decoding anything."""
        stmt = select(RecipeRow.name, RecipeRow.golden_sha256)
        if prefix:
            stmt = stmt.where(RecipeRow.name.startswith(prefix, autoescape=True))
        with self._session() as session:
            return {name: sha for name, sha in session.execute(stmt)}

    def golden_bytes(self, sha256: str) -> bytes:
        """The golden file's bytes as given (GoldenNotFound if there is none)."""
        return self.files.read(check_sha256(sha256))[0]

    def golden_file(self, sha256: str) -> tuple[bytes, str]:
        """(bytes, media type) of the golden file named ``sha256``."""
        return self.files.read(check_sha256(sha256))

    # GoldenBook ------------------------------------------------------------------------------------
    def golden(self, recipe: str) -> Golden:
        """The decoded golden of ``recipe`` (RecipeNotFound / RecipeError), from the cache when unchanged."""
        rec = self.get(recipe)
        key = (rec.golden_sha256, rec.masks, rec.align)
        with self._lock:
            hit = self._cache.get(recipe)
            if hit is not None and hit[0] == key:
                self._cache.move_to_end(recipe)
                return hit[1]
        data, _ = self.files.read(rec.golden_sha256)
        grey = decode_grey(data)
        if grey is None or (grey.shape[1], grey.shape[0]) != (rec.width, rec.height):
            raise RecipeError(
                f"recipe {recipe!r}: golden {rec.golden_sha256} does not decode to its {rec.width}x{rec.height} image"
            )
        golden = golden_from_image(recipe, rec.golden_sha256, grey, rec.masks, rec.align)
        with self._lock:
            self._cache[recipe] = (key, golden)
            self._cache.move_to_end(recipe)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return golden

    def cached(self) -> tuple[str, ...]:
        """Names whose decoded golden is cached, least recently used first."""
        with self._lock:
            return tuple(self._cache)

    def _forget(self, names: Sequence[str]) -> None:
        with self._lock:
            for name in names:
                self._cache.pop(name, None)
