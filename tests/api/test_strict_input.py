"""No non-finite numbers, lone surrogates or unbounded collections get in through the API (issue 10, items 4 and 5).

``NaN`` / ``Infinity`` / ``1e400`` in a review's box and a lone surrogate in its comment gave
500; ``throughput_per_min: Infinity`` on the twin's expected-state endpoint was written into
the event log (whose pages then fail ``JSON.parse``), and a 200,000-key ``boards_in_view``
became one 12.7 MB event. All of them are refused at the edge now, and nothing is written.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from api.limits import JSON_LIMIT
from api.routers.twin import MAX_CAMERAS
from tests.api.conftest import Populated

FAIL_ID = str(uuid.UUID(int=2))  # inspection 1 of the populated app: a fail with boxes


def post_raw(p: Populated, path: str, raw: str, role: str) -> Any:
    return p.client.post(path, content=raw.encode(), headers={**p.as_(role), "Content-Type": "application/json"})


def strict(text: str) -> Any:
    """JSON.parse: no NaN or Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("xyxy", "why"),
    [
        ("[1, 2, NaN, 40]", "NaN is not a JSON number"),
        ("[1, 2, Infinity, 40]", "Infinity is not a JSON number"),
        ("[-Infinity, 2, 30, 40]", "-Infinity is not a JSON number"),
        ("[1, 2, 1e400, 40]", "a number too large for a double"),
        ("[1, 2, 30, 123456789012345678901234567890]", "an integer beyond 64 bits"),
    ],
)
def test_non_finite_box_coordinates_are_refused_and_nothing_changes(populated: Populated, xyxy: str, why: str):
    p = populated
    head, before = p.sync.log.head, p.store.get(FAIL_ID)
    r = post_raw(
        p,
        f"/api/v1/inspections/{FAIL_ID}/review",
        f'{{"action": "add_box", "class_name": "open", "xyxy": {xyxy}}}',
        "qa",
    )
    assert r.status_code == 422, r.text
    assert r.json() == {
        "error": "RequestValidationError",
        "detail": [{"loc": ["body"], "msg": r.json()["detail"][0]["msg"], "type": "json_invalid"}],
    }
    assert why in r.json()["detail"][0]["msg"]
    assert p.sync.log.head == head and p.store.get(FAIL_ID) == before and p.store.audit(FAIL_ID) == ()


def test_a_lone_surrogate_is_refused_and_a_pair_is_text(populated: Populated):
    p = populated
    path = f"/api/v1/inspections/{FAIL_ID}/review"
    for lone in ("\\ud800", "x\\udfff", "\\udbff\\u0041", "\\uDC00\\uD800"):
        r = post_raw(p, path, f'{{"action": "comment", "comment": "{lone}"}}', "qa")
        assert r.status_code == 422 and "lone UTF-16 surrogate" in r.json()["detail"][0]["msg"], (lone, r.text)
        r = post_raw(p, "/api/v1/session", f'{{"token": "tsp_{lone}"}}', "qa")  # in any JSON body
        assert r.status_code == 422, r.text
    assert p.store.audit(FAIL_ID) == ()
    r = post_raw(p, path, '{"action": "comment", "comment": "looks fine \\ud83d\\ude00 \\\\ud800"}', "qa")
    assert r.status_code == 200, r.text  # a pair is one character; an escaped backslash is no surrogate
    assert p.store.audit(FAIL_ID)[0].comment == "looks fine \U0001f600 \\ud800"


def test_expected_state_refuses_non_finite_and_unbounded_values_and_logs_nothing(populated: Populated):
    p = populated
    path, head = "/api/v1/twin/line-1/expected", p.sync.log.head
    cases: list[tuple[str, int, str]] = [
        ('{"line_status": "stopped", "throughput_per_min": Infinity}', 422, "Infinity is not a JSON number"),
        ('{"line_status": "stopped", "throughput_per_min": 1e400}', 422, "too large for a double"),
        ('{"line_status": "stopped", "throughput_per_min": 1e300}', 422, "less than or equal to 1000000"),
        ('{"line_status": "stopped", "throughput_tolerance": NaN}', 422, "NaN is not a JSON number"),
        (
            json.dumps({"boards_in_view": {f"cam{i}": 1 for i in range(MAX_CAMERAS + 1)}}),
            422,
            f"Dictionary should have at most {MAX_CAMERAS} items",
        ),
        (json.dumps({"boards_in_view": {f"cam{i}": 1 for i in range(30_000)}}), 422, "at most 64 items"),
        (json.dumps({"boards_in_view": {f"cam{i}": 1 for i in range(200_000)}}), 413, "over the limit of 1 MiB"),
        (json.dumps({"boards_in_view": {"c" * 65: 1}}), 422, "String should match pattern"),
        (json.dumps({"boards_in_view": {"cam 1": 1}}), 422, "String should match pattern"),
        (json.dumps({"boards_in_view": {"cam1": 10_001}}), 422, "less than or equal to 10000"),
    ]
    for raw, status, why in cases:
        r = post_raw(p, path, raw, "twin")
        assert r.status_code == status and why in r.text, (raw[:80], r.text[:300])
        assert len(r.content) < 4096  # bounded answers: the input is never echoed
    assert len(cases[6][0]) > JSON_LIMIT and p.sync.log.head == head
    r = post_raw(
        p, path, '{"line_status": "stopped", "throughput_per_min": 12.5, "boards_in_view": {"cam1": 2}}', "twin"
    )
    assert r.status_code == 200 and r.json()["drift"] and r.json()["unchecked"] == ["boards_in_view"]
    page = p.client.get("/api/v1/events", params={"after": head}, headers=p.as_("twin")).text
    (event,) = strict(page)["events"]
    assert event["type"] == "io.twinspect.twin.drift" and event["data"]["expected"]["throughput_per_min"] == 12.5
