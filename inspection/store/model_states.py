"""Model versions per line: their state, the history of changes, the promotion lock, shadow verdicts.

Each registered version has a state on each line (``registered``, ``shadow``, ``active``,
``retired``); every change is a row of ``model_changes`` (who, when, why, from which
version), written in the same transaction as the states it changes. ``announced`` marks the
changes whose event went to the line's stream (the serving process announces them, so a
change made by the CLI while the line runs, or while it does not, is announced exactly once).
``model_locks`` holds one promotion per line at a time; ``shadow_verdicts`` what a shadow
model said about a board, apart from the stored inspections.

Declared on the inspection store's metadata (migration 0008).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    exc,
    insert,
    select,
    update,
)

from inspection.store.db import write_bind
from inspection.store.errors import StoreError
from inspection.store.models import Base, JSONType, UTCDateTime, in_list
from inspection.store.records import InspectionFilter

STATES = ("registered", "shadow", "active", "retired")
ACTIONS = ("registered", "shadow_started", "shadow_stopped", "activated", "rolled_back")
LOCK_STALE = timedelta(hours=1)  # a lock older than this was left by a process that died mid-promotion

model_versions = Table(
    "model_versions",
    Base.metadata,
    Column("line_id", String(100), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("role", String(20), nullable=False),
    Column("state", String(12), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(in_list("state", STATES), name="state"),
)

model_changes = Table(
    "model_changes",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("line_id", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("action", String(20), nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("previous", String(120), nullable=True),
    Column("who", String(200), nullable=False),
    Column("why", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("detail", JSONType, nullable=False),
    Column("announced", Boolean, nullable=False),
    CheckConstraint(in_list("action", ACTIONS), name="action"),
    Index("ix_model_changes_line", "line_id", "id"),
)

model_locks = Table(
    "model_locks",
    Base.metadata,
    Column("line_id", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("since", UTCDateTime, nullable=False),
)

shadow_verdicts = Table(
    "shadow_verdicts",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("line_id", String(100), nullable=False),
    Column("part_id", String(200), nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("boxes", JSONType, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_shadow_verdicts_line", "line_id", "name", "version", "id"),
    Index("ix_shadow_verdicts_part", "part_id"),
)


@dataclass(frozen=True)
class Version:
    """A model version as NAME:VERSION."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class Change:
    """One row of a line's model history."""

    id: int
    line_id: str
    role: str
    action: str
    model: Version
    previous: str | None
    who: str
    why: str
    at: datetime
    forced: bool
    detail: dict[str, Any]
    announced: bool


class PromotionBusy(StoreError):
    """Another promotion (or activation) of the line is under way."""


def _now() -> datetime:
    return datetime.now(UTC)


def _change(row: Any) -> Change:
    return Change(
        row.id,
        row.line_id,
        row.role,
        row.action,
        Version(row.name, row.version),
        row.previous,
        row.who,
        row.why,
        row.at,
        bool(row.forced),
        dict(row.detail or {}),
        bool(row.announced),
    )


class ModelStates:
    """The per-line model states and history of one database (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write = write_bind(engine)

    # reading -----------------------------------------------------------------------------------
    def states(self, line_id: str) -> dict[Version, tuple[str, str]]:
        """Every version the line knows: (role, state)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(model_versions).where(model_versions.c.line_id == line_id))
            return {Version(r.name, r.version): (r.role, r.state) for r in rows}

    def in_state(self, line_id: str, role: str, state: str) -> Version | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(model_versions.c.name, model_versions.c.version).where(
                    and_(
                        model_versions.c.line_id == line_id,
                        model_versions.c.role == role,
                        model_versions.c.state == state,
                    )
                )
            ).first()
        return Version(row.name, row.version) if row else None

    def history(self, line_id: str, limit: int = 200) -> list[Change]:
        """The line's changes, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(model_changes)
                .where(model_changes.c.line_id == line_id)
                .order_by(model_changes.c.id.desc())
                .limit(limit)
            )
            return [_change(r) for r in rows]

    def unannounced(self, line_id: str) -> list[Change]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(model_changes)
                .where(and_(model_changes.c.line_id == line_id, model_changes.c.announced.is_(False)))
                .order_by(model_changes.c.id)
            )
            return [_change(r) for r in rows]

    def mark_announced(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if ids:
            with self._write.begin() as conn:
                conn.execute(update(model_changes).where(model_changes.c.id.in_(ids)).values(announced=True))

    def active_stack(self, line_id: str, role: str) -> list[Version]:
        """The versions activated on the line, oldest first, each rollback popping the newest."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(model_changes.c.action, model_changes.c.name, model_changes.c.version)
                .where(and_(model_changes.c.line_id == line_id, model_changes.c.role == role))
                .where(model_changes.c.action.in_(("activated", "rolled_back")))
                .order_by(model_changes.c.id)
            )
            stack: list[Version] = []
            for action, name, version in rows:
                if action == "activated":
                    stack.append(Version(name, version))
                elif len(stack) > 1:
                    stack.pop()
            return stack

    # writing -----------------------------------------------------------------------------------
    def register(self, line_id: str, role: str, versions: Sequence[Version], who: str = "registry") -> list[Version]:
        """Versions the line did not know yet become ``registered`` (one change each); returns them."""
        known = self.states(line_id)
        new = [v for v in versions if v not in known]
        if new:
            with self._write.begin() as conn:
                for v in new:
                    self._set(conn, line_id, role, v, "registered")
                    self._log(conn, line_id, role, "registered", v, None, who, "found in the registry")
        return new

    def activate(
        self,
        line_id: str,
        role: str,
        model: Version,
        who: str,
        why: str,
        action: str = "activated",
        forced: bool = False,
        detail: dict[str, Any] | None = None,
    ) -> Change:
        """``model`` becomes the line's active one (the one before it: retired), one transaction."""
        with self._write.begin() as conn:
            before = self._in_state(conn, line_id, role, "active")
            if before is not None and before != model:
                self._set(conn, line_id, role, before, "retired")
            self._set(conn, line_id, role, model, "active")
            prev = str(before) if before is not None else None
            return self._log(conn, line_id, role, action, model, prev, who, why, forced, detail)

    def start_shadow(self, line_id: str, role: str, model: Version, who: str, why: str) -> Change:
        """``model`` runs in shadow on the line (a shadow before it goes back to registered)."""
        with self._write.begin() as conn:
            before = self._in_state(conn, line_id, role, "shadow")
            if before is not None and before != model:
                self._set(conn, line_id, role, before, "registered")
            self._set(conn, line_id, role, model, "shadow")
            return self._log(conn, line_id, role, "shadow_started", model, str(before) if before else None, who, why)

    def stop_shadow(self, line_id: str, role: str, who: str, why: str) -> Change | None:
        with self._write.begin() as conn:
            before = self._in_state(conn, line_id, role, "shadow")
            if before is None:
                return None
            self._set(conn, line_id, role, before, "registered")
            return self._log(conn, line_id, role, "shadow_stopped", before, None, who, why)

    def _in_state(self, conn: Connection, line_id: str, role: str, state: str) -> Version | None:
        row = conn.execute(
            select(model_versions.c.name, model_versions.c.version).where(
                and_(
                    model_versions.c.line_id == line_id,
                    model_versions.c.role == role,
                    model_versions.c.state == state,
                )
            )
        ).first()
        return Version(row.name, row.version) if row else None

    def _set(self, conn: Connection, line_id: str, role: str, model: Version, state: str) -> None:
        key = and_(
            model_versions.c.line_id == line_id,
            model_versions.c.name == model.name,
            model_versions.c.version == model.version,
        )
        values = {"role": role, "state": state, "updated_at": _now()}
        if conn.execute(update(model_versions).where(key).values(**values)).rowcount == 0:
            conn.execute(
                insert(model_versions).values(line_id=line_id, name=model.name, version=model.version, **values)
            )

    def _log(
        self,
        conn: Connection,
        line_id: str,
        role: str,
        action: str,
        model: Version,
        previous: str | None,
        who: str,
        why: str,
        forced: bool = False,
        detail: dict[str, Any] | None = None,
    ) -> Change:
        at = _now()
        values = {
            "line_id": line_id,
            "role": role,
            "action": action,
            "name": model.name,
            "version": model.version,
            "previous": previous,
            "who": who[:200],
            "why": why,
            "at": at,
            "forced": forced,
            "detail": detail or {},
            "announced": False,
        }
        new_id = conn.execute(insert(model_changes).values(**values)).inserted_primary_key
        assert new_id is not None
        return Change(
            int(new_id[0]),
            line_id,
            role,
            action,
            model,
            previous,
            who[:200],
            why,
            at,
            forced,
            detail or {},
            False,
        )

    # one promotion at a time -------------------------------------------------------------------
    def lock(self, line_id: str, holder: str) -> None:
        """Take the line's promotion lock; PromotionBusy when someone holds it (a stale lock is taken over)."""
        with self._write.begin() as conn:
            row = conn.execute(select(model_locks).where(model_locks.c.line_id == line_id)).first()
            if row is not None and _now() - row.since < LOCK_STALE:
                raise PromotionBusy(
                    f"line {line_id!r}: a promotion by {row.holder} is under way since "
                    f"{row.since.isoformat(timespec='seconds')}; try again when it is done"
                )
            conn.execute(delete(model_locks).where(model_locks.c.line_id == line_id))
            try:
                conn.execute(insert(model_locks).values(line_id=line_id, holder=holder[:200], since=_now()))
            except exc.IntegrityError:
                raise PromotionBusy(f"line {line_id!r}: another promotion is under way") from None

    def set_detail(self, change_id: int, detail: dict[str, Any]) -> None:
        """Replace the detail of one change (the watch records what it found there)."""
        with self._write.begin() as conn:
            conn.execute(update(model_changes).where(model_changes.c.id == change_id).values(detail=detail))

    def unlock(self, line_id: str) -> None:
        with self._write.begin() as conn:
            conn.execute(delete(model_locks).where(model_locks.c.line_id == line_id))

    # shadow verdicts ----------------------------------------------------------------------------
    def add_shadow_verdicts(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of (line_id, part_id, name, version, outcome, boxes); ``at`` is now."""
        if rows:
            now = _now()
            with self._write.begin() as conn:
                conn.execute(insert(shadow_verdicts), [{**r, "at": now} for r in rows])

    def shadow_verdicts(self, line_id: str, model: Version, limit: int = 100_000) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(shadow_verdicts)
                .where(
                    and_(
                        shadow_verdicts.c.line_id == line_id,
                        shadow_verdicts.c.name == model.name,
                        shadow_verdicts.c.version == model.version,
                    )
                )
                .order_by(shadow_verdicts.c.id)
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]


def shadow_pairs(engine: Engine, line_id: str, model: Version, limit: int = 20_000) -> list[dict[str, Any]]:
    """Each board the shadow ``model`` saw that is stored as an inspection: both verdicts, the review, the classes.

    ``active`` is the active model's own verdict (before review), ``final`` the verdict now (after
    review); ``truth_classes`` the classes of the live boxes (after review), ``active_classes``
    the classes the active model gave, ``shadow_classes`` the shadow's.
    """
    from inspection.store.models import BoxRow, InspectionRow

    ins, box = InspectionRow.__table__, BoxRow.__table__
    sv = shadow_verdicts
    query = (
        select(
            ins.c.id,
            ins.c.part_id,
            ins.c.outcome,
            ins.c.model_outcome,
            ins.c.review_status,
            ins.c.model_version,
            sv.c.outcome.label("shadow"),
            sv.c.boxes,
        )
        .join(ins, ins.c.part_id == sv.c.part_id)
        .where(and_(sv.c.line_id == line_id, sv.c.name == model.name, sv.c.version == model.version))
        .order_by(sv.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        ids = [r["id"] for r in rows]
        boxes: dict[str, list[tuple[str, str, bool, str | None]]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = select(box.c.inspection_id, box.c.class_name, box.c.source, box.c.rejected, box.c.model_class_name)
            for b in conn.execute(q.where(box.c.inspection_id.in_(chunk))):
                boxes.setdefault(b.inspection_id, []).append(
                    (b.class_name, b.source, bool(b.rejected), b.model_class_name)
                )
    out = []
    for r in rows:
        mine = boxes.get(r["id"], [])
        out.append(
            {
                "inspection_id": r["id"],
                "part_id": r["part_id"],
                "active": r["model_outcome"] or r["outcome"],
                "active_version": r["model_version"],
                "final": r["outcome"],
                "reviewed": r["review_status"] != "pending",
                "shadow": r["shadow"],
                "truth_classes": sorted({c for c, _, rejected, _ in mine if not rejected}),
                "active_classes": sorted({m or c for c, source, _, m in mine if source == "model"}),
                "shadow_classes": sorted({str(b["class_name"]) for b in r["boxes"] or []}),
            }
        )
    return out


def boards_of(
    engine: Engine, line_id: str, model: Version, n: int, after: datetime | None = None, before: datetime | None = None
) -> list[dict[str, Any]]:
    """Up to ``n`` of the line's inspections by ``model`` (oldest first after ``after``, newest first before
    ``before``): the model's own verdict, whether QA corrected it, the classes the model reported."""
    from inspection.store.models import BoxRow, InspectionRow

    ins, box = InspectionRow.__table__, BoxRow.__table__
    query = select(ins.c.id, ins.c.outcome, ins.c.model_outcome, ins.c.corrected).where(
        and_(ins.c.line_id == line_id, ins.c.model_name == model.name, ins.c.model_version == str(model.version))
    )
    if after is not None:
        query = query.where(ins.c.created_at >= after).order_by(ins.c.created_at, ins.c.id)
    else:
        if before is not None:
            query = query.where(ins.c.created_at < before)
        query = query.order_by(ins.c.created_at.desc(), ins.c.id.desc())
    with engine.connect() as conn:
        rows = list(conn.execute(query.limit(n)))
        ids = [r.id for r in rows]
        classes: dict[str, set[str]] = {}
        for i in range(0, len(ids), 500):
            q = select(box.c.inspection_id, box.c.class_name, box.c.model_class_name).where(
                and_(box.c.inspection_id.in_(ids[i : i + 500]), box.c.source == "model")
            )
            for b in conn.execute(q):
                classes.setdefault(b.inspection_id, set()).add(b.model_class_name or b.class_name)
    return [
        {"verdict": r.model_outcome or r.outcome, "corrected": bool(r.corrected), "classes": classes.get(r.id, set())}
        for r in rows
    ]


def review_candidates(
    engine: Engine, line_id: str, shadow: Version | None, limit: int = 5000, flt: InspectionFilter | None = None
) -> list[dict[str, Any]]:
    """The line's inspections not reviewed yet, newest first (created_at, then id, descending): verdict, top
    confidence, the shadow's verdict. ``flt`` narrows them further (its line and review status aside)."""
    from inspection.store.models import InspectionRow
    from inspection.store.queries import conditions

    ins, sv = InspectionRow.__table__, shadow_verdicts
    cols = [ins.c.id, ins.c.part_id, ins.c.outcome, ins.c.model_outcome, ins.c.max_confidence, ins.c.created_at]
    where = and_(ins.c.line_id == line_id, ins.c.review_status == "pending", *conditions(flt))
    query = select(*cols).where(where)
    if shadow is not None:
        on = and_(sv.c.part_id == ins.c.part_id, sv.c.name == shadow.name, sv.c.version == shadow.version)
        query = select(*cols, sv.c.outcome.label("shadow")).select_from(ins.outerjoin(sv, on)).where(where)
    query = query.order_by(ins.c.created_at.desc(), ins.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [
            {
                "inspection_id": r.id,
                "part_id": r.part_id,
                "verdict": r.model_outcome or r.outcome,
                "max_confidence": float(r.max_confidence),
                "shadow": getattr(r, "shadow", None),
                "created_at": r.created_at,
            }
            for r in conn.execute(query)
        ]
