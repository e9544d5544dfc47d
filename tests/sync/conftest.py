"""Factories for the sync tests: a fresh database, drafts of every type, a log with its twin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from inspection.store import open_database
from sync.events import Draft
from sync.log import EventLog
from sync.twin import TwinStore


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    eng = open_database(f"sqlite:///{tmp_path / 'sync.db'}")
    yield eng
    eng.dispose()


def draft(kind: str, i: int = 0, line: str = "line-1", verdict: str = "pass", **extra: object) -> Draft:
    """A valid draft of ``kind`` (data as the engine writes it), numbered by ``i``."""
    part, cam = f"p{i}", "cam1"
    data: dict[str, object] = {
        "part.entered": {"part_id": part, "camera_id": cam, "track_id": i, "box": [0, 0, 10, 10], "frame_seq": i},
        "part.inspected": {
            "part_id": part,
            "camera_id": cam,
            "track_id": i,
            "inspection_id": f"insp-{i}",
            "verdict": verdict,
            "reasons": [],
            "board_box": [0, 0, 10, 10],
            "frame_seq": i,
            "latency_ms": 12.5,
            "model": {"name": "defect-yolov8n", "version": "1"},
            "defects": [] if verdict == "pass" else [{"class_name": "open", "confidence": 0.9, "xyxy": [1, 2, 3, 4]}],
        },
        "part.uninspected": {"part_id": part, "camera_id": cam, "reason": "left early", "frame_seq": i},
        "part.exited": {"part_id": part, "camera_id": cam, "inspected": True, "frame_seq": i},
        "line.started": {"camera_id": cam, "frame_seq": i, "cameras": {cam: "running"}},
        "line.stopped": {"camera_id": cam, "frame_seq": i, "cameras": {cam: "stopped"}},
        "camera.online": {"camera_id": cam, "state": "running", "last_error": None},
        "camera.offline": {"camera_id": cam, "state": "reconnecting", "last_error": "connection refused"},
        "review.corrected": {
            "inspection_id": f"insp-{i}",
            "part_id": part,
            "before": "fail",
            "after": "pass",
            "action": "reject",
            "reviewer": "qa-1",
            "boxes": [],
        },
        "model.activated": {"role": "defect", "name": "defect-yolov8n", "version": str(i)},
        "twin.drift": {
            "differences": [{"field": "line_status", "expected": "stopped", "observed": "running"}],
            "expected": {"line_status": "stopped"},
        },
    }[kind]
    data.update(extra)
    subject = part if kind.startswith("part.") else None
    return Draft(
        kind,
        line,
        f"/twinspect/edge-1/{cam}",
        data,
        subject=subject,
        time=f"2026-11-21T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
    )


def story(n_parts: int, line: str = "line-1") -> list[Draft]:
    """A line's life: models, camera, start, parts entering / inspected / exiting, a correction, a stop."""
    out = [draft("model.activated", 1, line), draft("camera.online", 0, line), draft("line.started", 0, line)]
    for i in range(n_parts):
        out.append(draft("part.entered", i, line))
        if i % 7 == 3:
            out.append(draft("part.uninspected", i, line))
        else:
            out.append(draft("part.inspected", i, line, verdict="fail" if i % 3 == 0 else "pass"))
        out.append(draft("part.exited", i, line))
        if i % 10 == 9:
            out.append(draft("review.corrected", i - 9, line))
    out += [
        draft("camera.offline", n_parts, line),
        draft("twin.drift", n_parts, line),
        draft("line.stopped", n_parts, line),
    ]
    return out


@pytest.fixture
def make_log(db: Engine) -> Iterator[Callable[[], tuple[EventLog, TwinStore]]]:
    """Open (or reopen) the event log of the test database, with its twin."""
    opened: list[EventLog] = []

    def make() -> tuple[EventLog, TwinStore]:
        log = EventLog(db)
        opened.append(log)
        return log, TwinStore(log)

    yield make
    for log in opened:
        log.stop()
