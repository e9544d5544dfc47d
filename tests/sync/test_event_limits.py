"""The event serializer is strict JSON and bounded: no NaN or Infinity, no lone surrogate, no event over 64 KiB.

A draft that breaks a rule is refused when it is made (InvalidEvent naming its type, and its
size), so it never reaches the log, its feeds or a strict client's ``JSON.parse``.
"""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import Engine

from sync.errors import InvalidEvent
from sync.events import MAX_EVENT_BYTES, Draft, Event, dumps
from sync.log import EventLog
from tests.sync.conftest import draft

DIFF = {"field": "line_status", "expected": "stopped", "observed": "running"}


def drift(**expected: object) -> Draft:
    return Draft("twin.drift", "line-1", "/twinspect/edge-1", {"differences": [DIFF], "expected": expected})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_naming_the_type(value: float):
    with pytest.raises(ValueError):
        dumps({"x": value})
    with pytest.raises(InvalidEvent, match=r"^twin.drift event: its data holds NaN or Infinity"):
        drift(throughput_per_min=value)
    with pytest.raises(InvalidEvent, match="part.inspected event"):
        draft("part.inspected", 1, latency_ms=value)


def test_a_lone_surrogate_and_data_that_is_not_json_are_refused():
    with pytest.raises(InvalidEvent, match="twin.drift event: a string holds a lone UTF-16 surrogate"):
        drift(note="half \ud800")
    with pytest.raises(InvalidEvent, match="twin.drift event: its data is not JSON"):
        drift(note=object())
    assert drift(note="whole \U0001f600").data["expected"] == {"note": "whole \U0001f600"}


def test_an_event_over_the_size_limit_is_refused_with_its_type_and_size(db: Engine):
    too_big = rf"^twin.drift event of (\d+) bytes is over the limit of {MAX_EVENT_BYTES} "
    with pytest.raises(InvalidEvent, match=too_big):
        drift(boards={f"cam{i}": i for i in range(20_000)})
    with pytest.raises(InvalidEvent, match=r"event of \d+ bytes"):
        drift(note="\u00e9" * (MAX_EVENT_BYTES // 2))  # counted in UTF-8 bytes, not characters
    fits = drift(note="x" * (MAX_EVENT_BYTES - 1000))
    log = EventLog(db)
    (event,) = log.append([fits])
    assert MAX_EVENT_BYTES - 1000 < len(event.body.encode()) <= MAX_EVENT_BYTES


def test_a_received_event_with_nan_or_over_the_limit_is_refused():
    good = Event.from_draft(draft("part.inspected", 1), 1, 1)
    ce = json.loads(good.body)
    assert Event.from_body(good.body).id == good.id
    with pytest.raises(InvalidEvent, match="not a twinspect CloudEvent"):
        Event.from_body(good.body.replace('"latency_ms":12.5', '"latency_ms":NaN'))
    ce["data"]["reasons"] = ["r" * 100] * 700
    too_big = rf"part.inspected event of \d+ bytes is over the limit of {MAX_EVENT_BYTES}"
    with pytest.raises(InvalidEvent, match=too_big):
        Event.from_body(json.dumps(ce))
