"""The review queue by expected information, ranked by the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from inspection.core.outcome import Outcome
from inspection.store import InspectionStore, ModelStates, Version
from inspection.store.information import Place, ranked
from tests.inspection.test_store import (  # noqa: F401 - the fixtures
    Clock,
    clock,
    db_url,
    engine,
    make_record,
    store,
)

THRESHOLD = 0.5
SHADOW = Version("defect-yolov8n", 2)


def expected_score(confidence: float, shadow: str | None, verdict: str) -> float:
    """The definition, written out independently of the SQL."""
    if confidence <= 0:
        u = 0.0
    elif confidence < THRESHOLD:
        u = confidence / THRESHOLD
    else:
        u = (1 - confidence) / (1 - THRESHOLD)
    return u + (shadow is not None and shadow != verdict)


def test_every_unreviewed_board_is_ranked_and_pages_walk_the_order_once(store: InspectionStore, clock: Clock):  # noqa: F811
    records = []
    for batch in range(6):  # three boards per created_at, two of them without boxes: ties are broken by id
        recs = [
            make_record(store.evidence, f"b{batch}-{i}", line_id="L0", seed=batch * 3 + i, boxes=0 if i < 2 else 2,
                        outcome=(Outcome.FAIL, Outcome.PASS, Outcome.UNCERTAIN)[(batch + i) % 3])
            for i in range(3)
        ]  # fmt: skip
        store.save_many(recs)
        records += recs
        clock.tick()
    store.save_many([make_record(store.evidence, "other-line", line_id="L1", seed=99)])
    oldest_pass = next(r for r in records if r.outcome is Outcome.PASS)
    states = ModelStates(store.engine)
    states.add_shadow_verdicts(
        [{"line_id": "L0", "part_id": oldest_pass.part_id, "name": SHADOW.name, "version": SHADOW.version,
          "outcome": "fail", "boxes": []}]
    )  # fmt: skip
    stored = store.get_many([r.id for r in records])
    shadow_of = {oldest_pass.id: "fail"}
    scores = {i: expected_score(s.max_confidence, shadow_of.get(i), s.outcome.value) for i, s in stored.items()}
    newest_id_first = sorted(stored, reverse=True)
    expected = sorted(newest_id_first, key=lambda i: (-round(scores[i], 9), -stored[i].created_at.timestamp()))
    assert len({(scores[i], stored[i].created_at) for i in stored}) < len(stored)  # the id breaks some ties

    everything = ranked(store.engine, "L0", SHADOW, THRESHOLD, limit=1000)
    assert [b["inspection_id"] for b in everything] == expected
    assert everything[0]["inspection_id"] == oldest_pass.id  # the oldest board, first: the shadow disagrees
    assert "the shadow model says fail, the active one pass" in everything[0]["why"][1]
    for b in everything:
        assert abs(b["score"] - scores[b["inspection_id"]]) < 1e-9

    for limit in (1, 4, 7):
        walked, after = [], None
        while True:
            page = ranked(store.engine, "L0", SHADOW, THRESHOLD, limit=limit, after=after)
            walked += [b["inspection_id"] for b in page]
            if len(page) < limit:
                break
            last = page[-1]
            after = Place(last["score"], last["created_at"], last["inspection_id"])
        assert walked == expected, limit
