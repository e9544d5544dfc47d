"""A reviewer is the token, not its name: two tokens named alike are two reviewers (issue 10, item 6)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from api.tokens import TokenStore
from inspection.core.outcome import Outcome
from inspection.store import open_database
from inspection.store.db import _alembic_config
from tests.api.conftest import Populated, bearer
from tests.inspection.test_store import database_url

T = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)


def _review(p: Populated, inspection_id: str, token: str, **body: Any):  # type: ignore[no-untyped-def]
    return p.client.post(f"/api/v1/inspections/{inspection_id}/review", json=body, headers=bearer(token))


def _first(p: Populated, outcome: Outcome) -> str:
    items = [p.store.get(str(uuid.UUID(int=i + 1))) for i in range(p.n)]
    return next(x.id for x in items if x.outcome is outcome)


def test_another_token_with_the_same_name_cannot_overwrite_a_review(populated: Populated):
    p = populated
    assert p.services.tokens is not None
    first, first_token = p.services.tokens.create("qa", "carol")
    second, second_token = p.services.tokens.create("qa", "carol")  # a second QA token, same name
    item = _first(p, Outcome.FAIL)
    assert _review(p, item, first_token, action="confirm").status_code == 200
    before = p.store.get(item)

    r = _review(p, item, second_token, action="reject")
    assert r.status_code == 409, r.text  # 200 before: the name was the identity
    assert f"token {first.id}" in r.json()["detail"]
    assert p.store.get(item) == before

    review = r.json()["current"]["review"]
    assert (review["by"], review["by_token_id"]) == ("carol", first.id)
    amended = _review(p, item, first_token, action="reject", version=before.version)  # the same token may amend
    assert amended.status_code == 200 and amended.json()["review_status"] == "rejected"
    assert _review(p, item, second_token, action="comment", comment="seen").status_code == 200

    audit = p.client.get(f"/api/v1/inspections/{item}/audit", headers=p.as_("qa")).json()
    assert [(a["actor"], a["actor_id"], a["action"]) for a in audit] == [
        ("carol", first.id, "confirm"),
        ("carol", first.id, "reject"),
        ("carol", second.id, "comment"),
    ]
    assert audit[0]["after"]["reviewed_by_id"] == first.id


def _at_0005_with_reviews(url: str) -> None:
    """A database at revision 0005 (before reviewer ids) with tokens and reviewed inspections."""
    engine = create_engine(url, poolclass=NullPool)
    cols = (
        "id, part_id, line_id, camera_id, track_id, outcome, reasons, model_name, model_version, frame_seq, "
        "captured_at, created_at, evidence_sha256, board_x1, board_y1, board_x2, board_y2, crop_width, "
        "crop_height, review_status, reviewed_by"
    )
    t = T.replace(tzinfo=None)
    try:
        with engine.begin() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0005")
            for ident, name in (("tok-dave", "dave"), ("tok-erin-1", "erin"), ("tok-erin-2", "erin")):
                conn.execute(
                    text(
                        "INSERT INTO api_tokens (id, name, role, secret_sha256, created_at) "
                        "VALUES (:i, :n, 'qa', :s, :t)"
                    ),
                    {"i": ident, "n": name, "s": "0" * 64, "t": t},
                )
            for ident, by in (("a", "dave"), ("b", "erin"), ("c", None)):
                conn.execute(
                    text(
                        f"INSERT INTO inspections ({cols}) VALUES (:id, :id, 'L1', 'cam1', 1, 'fail', '[]', "
                        "'m', '1', 1, :t, :t, :sha, 0, 0, 10, 10, 10, 10, :st, :by)"
                    ),
                    {"id": ident, "t": t, "sha": "0" * 64, "st": "confirmed" if by else "pending", "by": by},
                )
                if by:
                    conn.execute(
                        text(
                            "INSERT INTO review_audit (inspection_id, at, actor, role, action, before, "
                            "after) VALUES (:i, :t, :by, 'qa', 'confirm', '{}', '{}')"
                        ),
                        {"i": ident, "t": t, "by": by},
                    )
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_gives_old_reviews_their_token_when_the_name_names_one(backend: str, tmp_path: Path):
    with database_url(backend, tmp_path) as url:
        if backend == "sqlite":
            (tmp_path / "db").mkdir()
        _at_0005_with_reviews(url)
        engine = open_database(url)
        try:
            with engine.connect() as conn:
                rows = dict(conn.execute(text("SELECT id, reviewed_by_id FROM inspections")).all())
                audit = dict(conn.execute(text("SELECT inspection_id, actor_id FROM review_audit")).all())
            assert rows == {"a": "tok-dave", "b": None, "c": None}  # erin's name was shared: no id, the name decides
            assert audit == {"a": "tok-dave", "b": None}
            assert TokenStore(engine).verify("tsp_tok-dave_x") is None  # the token table is untouched
        finally:
            engine.dispose()
