"""The twin projection: one document per line, shaped like an Eclipse Ditto thing.

The document is a pure function of the line's events: ``apply(state, event)`` folds one
event into a plain JSON state, ``document(state)`` renders the thing, and its
``revision`` is the sequence of the last event applied. So replaying the log from zero
gives the same document byte for byte, and ``at=REVISION`` is a replay that stops early
(starting from the nearest snapshot that retention left behind).

    {"thingId": "twinspect:line-1", "policyId": "twinspect:default", "revision": 42,
     "attributes": {"lineId": "line-1", "kind": "inspection-line", "lastEventTime": ...},
     "features": {"line": {"properties": {"status": "running", "since": ..., ["reason": "shutdown"]}},
                  "cameras": ..., "counters": ..., "quality": ..., "throughput": ...,
                  "models": ..., "recentParts": ..., "drift": ..., "recipe": ...,
                  "process": {chart: {"state": "drifting" | "in_control", "since": ...}}}}
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sync.errors import BadOffset, OffsetExpired, UnknownLine
from sync.events import Event, dumps
from sync.log import EventLog
from sync.tables import twin_snapshots

log = logging.getLogger(__name__)

RECENT_PARTS = 20
THROUGHPUT_WINDOW_S = 60
OUTCOMES = ("pass", "fail", "uncertain")


def new_state(line_id: str) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "revision": 0,
        "offset": 0,
        "last_time": None,
        "line": {"status": "unknown", "since": None},
        "cameras": {},
        "models": {},
        "drift": None,
        "counters": {
            "entered": 0,
            "inspected": 0,
            "uninspected": 0,
            "exited": 0,
            "corrected": 0,
            "verdicts": dict.fromkeys(OUTCOMES, 0),
            "defects": {},
        },
        "recent": [],
        "inspected_per_second": {},
        "recipe": {"line": None, "last": None},
    }


def _epoch(time_iso: str) -> float:
    return datetime.fromisoformat(time_iso.replace("Z", "+00:00")).timestamp()


def _recent_item(state: dict[str, Any], part_id: str) -> dict[str, Any] | None:
    return next((it for it in state["recent"] if it["partId"] == part_id), None)


def _on_inspected(state: dict[str, Any], ce: dict[str, Any]) -> None:
    data, counters = ce["data"], state["counters"]
    verdict = data["verdict"]
    counters["inspected"] += 1
    counters["verdicts"][verdict] += 1
    for d in data.get("defects", []):
        counters["defects"][d["class_name"]] = counters["defects"].get(d["class_name"], 0) + 1
    second = int(_epoch(ce["time"]))
    per_second = state["inspected_per_second"]  # {"<epoch second>": count}, the last window only
    per_second[str(second)] = per_second.get(str(second), 0) + 1
    if len(per_second) > THROUGHPUT_WINDOW_S + 1:
        for key in [k for k in per_second if int(k) <= second - THROUGHPUT_WINDOW_S]:
            del per_second[key]
    item = {
        "partId": data["part_id"],
        "cameraId": data["camera_id"],
        "verdict": verdict,
        "defects": sorted({d["class_name"] for d in data.get("defects", [])}),
        "inspectionId": data.get("inspection_id"),
        "time": ce["time"],
    }
    if data.get("recipe") is not None:
        item["recipe"] = data["recipe"]
        recipe = _recipe_state(state)
        recipe["last"] = {
            "partId": data["part_id"],
            "recipe": data["recipe"],
            "goldenSha256": data.get("golden_sha256"),
            "alignmentScore": data.get("alignment_score"),
            "time": ce["time"],
        }
    state["recent"] = [item, *state["recent"]][:RECENT_PARTS]


def _recipe_state(state: dict[str, Any]) -> dict[str, Any]:
    """The recipe part of a state (snapshots taken before recipes existed have none)."""
    return state.setdefault("recipe", {"line": None, "last": None})


def _on_recipe_changed(state: dict[str, Any], ce: dict[str, Any]) -> None:
    data = ce["data"]
    _recipe_state(state)["line"] = {
        "name": data["recipe"],
        "goldenSha256": data.get("golden_sha256"),
        "previous": data.get("previous"),
        "changedBy": data.get("changed_by"),
        "since": ce["time"],
    }


def line_recipe(state: dict[str, Any]) -> tuple[str | None, str | None]:
    """(recipe, golden sha256) of the line as the last ``line.recipe_changed`` set them; (None, None) if never."""
    line = (state.get("recipe") or {}).get("line") or {}
    return line.get("name"), line.get("goldenSha256")


def _on_process(state: dict[str, Any], kind: str, ce: dict[str, Any]) -> None:
    """The process state of one control chart: drifting since (which rule), or in control since."""
    data = ce["data"]
    charts = state.setdefault("process", {})  # snapshots taken before process control have none
    if kind == "process.drift":
        charts[data["chart"]] = {"state": "drifting", "since": ce["time"], "rule": data["rule"]}
    else:
        charts[data["chart"]] = {"state": "in_control", "since": ce["time"], "reason": data["reason"]}


def _on_line(state: dict[str, Any], kind: str, ce: dict[str, Any]) -> None:
    """The line's status; a stopped line makes no parts, so its parts rate is 0 from then (the window is emptied)."""
    state["line"] = {"status": "running" if kind == "line.started" else "stopped", "since": ce["time"]}
    if kind == "line.stopped":
        state["inspected_per_second"] = {}
        if ce["data"].get("reason"):  # the edge stopped it (shutdown) or found it not stopped (unclean_shutdown)
            state["line"]["reason"] = ce["data"]["reason"]


def _on_corrected(state: dict[str, Any], ce: dict[str, Any]) -> None:
    data, verdicts = ce["data"], state["counters"]["verdicts"]
    before, after = data["before"], data["after"]
    if before != after:
        verdicts[before] -= 1
        verdicts[after] += 1
    if "corrected" in data and data["corrected"] is not None:  # boards whose final verdict differs from the model's
        state["counters"]["corrected"] += int(bool(data["corrected"])) - int(bool(data.get("was_corrected")))
    else:  # events made before corrections were defined once: each verdict change counted
        state["counters"]["corrected"] += 1
    item = _recent_item(state, data["part_id"])
    if item is not None:
        item["verdict"] = after
        item["reviewed"] = True


def _on_model(state: dict[str, Any], kind: str, ce: dict[str, Any]) -> None:
    """The active model per role (models), the shadow per role (shadowModels), the last alert."""
    data, role = ce["data"], ce["data"]["role"]
    entry = {"name": data["name"], "version": data["version"], "since": ce["time"]}
    shadows = state.setdefault("shadow", {})  # snapshots taken before model delivery have none
    if kind == "model.shadow_started":
        shadows[role] = entry
    elif kind == "model.alert":
        state["models"].setdefault(role, entry)["alert"] = {"metric": data["metric"], "time": ce["time"]}
    else:
        state["models"][role] = entry
        if (shadows.get(role) or {}).get("name") == data["name"] and shadows[role]["version"] == data["version"]:
            del shadows[role]  # the shadow was promoted


def apply(state: dict[str, Any], ce: dict[str, Any], offset: int) -> None:
    """Fold one CloudEvent (as a dict) into ``state``, in place."""
    kind = ce["type"].removeprefix("io.twinspect.")
    data = ce["data"]
    counters = state["counters"]
    if kind == "part.entered":
        counters["entered"] += 1
    elif kind == "part.inspected":
        _on_inspected(state, ce)
    elif kind == "part.uninspected":
        counters["uninspected"] += 1
    elif kind == "part.exited":
        counters["exited"] += 1
    elif kind in ("line.started", "line.stopped"):
        _on_line(state, kind, ce)
    elif kind in ("camera.online", "camera.offline"):
        state["cameras"][data["camera_id"]] = {
            "state": kind.split(".")[1],
            "since": ce["time"],
            "lastError": data.get("last_error"),
        }
    elif kind == "review.corrected":
        _on_corrected(state, ce)
    elif kind in ("model.activated", "model.rolled_back", "model.shadow_started", "model.alert"):
        _on_model(state, kind, ce)
    elif kind == "twin.drift":
        state["drift"] = {"time": ce["time"], "differences": data["differences"]}
    elif kind == "line.recipe_changed":
        _on_recipe_changed(state, ce)
    elif kind in ("process.drift", "process.in_control"):
        _on_process(state, kind, ce)
    state["revision"] = ce["sequence"]
    state["offset"] = offset
    state["last_time"] = ce["time"]


def document(state: dict[str, Any]) -> dict[str, Any]:
    """The Ditto-shaped thing of a state."""
    c = state["counters"]
    inspected = c["inspected"]
    now_s = int(_epoch(state["last_time"])) if state["last_time"] else 0
    in_window = sum(n for k, n in state["inspected_per_second"].items() if int(k) > now_s - THROUGHPUT_WINDOW_S)
    return {
        "thingId": f"twinspect:{state['line_id']}",
        "policyId": "twinspect:default",
        "revision": state["revision"],
        "attributes": {"lineId": state["line_id"], "kind": "inspection-line", "lastEventTime": state["last_time"]},
        "features": {
            "line": {"properties": dict(state["line"])},
            "cameras": {"properties": state["cameras"]},
            "counters": {
                "properties": {
                    "entered": c["entered"],
                    "inspected": inspected,
                    "uninspected": c["uninspected"],
                    "exited": c["exited"],
                    "corrected": c["corrected"],
                    "verdicts": c["verdicts"],
                    "defects": dict(sorted(c["defects"].items())),
                }
            },
            "quality": {
                "properties": {
                    "yield": round(c["verdicts"]["pass"] / inspected, 6) if inspected else None,
                    "coverage": round(inspected / c["entered"], 6) if c["entered"] else None,
                }
            },
            "throughput": {
                "properties": {
                    "windowSeconds": THROUGHPUT_WINDOW_S,
                    "partsPerMinute": round(in_window * 60.0 / THROUGHPUT_WINDOW_S, 3),
                }
            },
            "models": {"properties": state["models"]},
            "shadowModels": {"properties": dict(state.get("shadow", {}))},
            "recentParts": {"properties": {"items": state["recent"]}},
            "drift": {"properties": state["drift"] or {}},
            "recipe": {"properties": _recipe_properties(state)},
            "process": {"properties": dict(sorted(state.get("process", {}).items()))},
        },
    }


def _recipe_properties(state: dict[str, Any]) -> dict[str, Any]:
    """The line's recipe and golden (from line.recipe_changed) and the last inspection's (from part.inspected)."""
    recipe = state.get("recipe") or {}
    line = recipe.get("line") or {}
    return {
        "name": line.get("name"),
        "goldenSha256": line.get("goldenSha256"),
        "since": line.get("since"),
        "changedBy": line.get("changedBy"),
        "previous": line.get("previous"),
        "lastInspection": recipe.get("last"),
    }


class TwinStore:
    """Keeps every line's twin current from the event log; rebuilds past revisions on demand."""

    def __init__(self, log_: EventLog) -> None:
        self.log = log_
        self._lock = threading.Lock()
        self._states: dict[str, dict[str, Any]] = {}
        self._texts: dict[str, str] = {}
        for line in log_.lines():
            self._states[line] = self._rebuild(line, None)
        log_.add_listener(self._on_events)

    def lines(self) -> list[str]:
        with self._lock:
            return sorted(self._states)

    def models(self, line: str) -> dict[str, Any]:
        """The active models the twin of ``line`` knows, by role."""
        with self._lock:
            return json.loads(dumps(self._require(line)["models"]))  # type: ignore[no-any-return]

    def presence(self, line: str) -> tuple[str, list[str]]:
        """(line status, cameras shown online) of the twin of ``line``; ("unknown", []) if there is no twin yet."""
        with self._lock:
            state = self._states.get(line)
            if state is None:
                return "unknown", []
            online = [cid for cid, cam in sorted(state["cameras"].items()) if cam["state"] == "online"]
            return str(state["line"]["status"]), online

    def line_recipe(self, line: str) -> tuple[str | None, str | None]:
        """(recipe, golden sha256) the twin of ``line`` last recorded; (None, None): none, or no twin yet."""
        with self._lock:
            state = self._states.get(line)
            return (None, None) if state is None else line_recipe(state)

    def revision(self, line: str) -> int:
        with self._lock:
            return int(self._require(line)["revision"])

    def document_text(self, line: str) -> tuple[int, str]:
        """(revision, canonical JSON text) of the current document."""
        with self._lock:
            state = self._require(line)
            text = self._texts.get(line)
            if text is None:
                text = self._texts[line] = dumps(document(state))
            return int(state["revision"]), text

    def document_at(self, line: str, revision: int) -> str:
        """The document as it was right after the event with sequence ``revision`` of ``line``."""
        current = self.revision(line)
        if revision < 0 or revision > current:
            raise BadOffset(f"revision {revision} of line {line!r}: must be between 0 and {current}")
        if revision == current:
            return self.document_text(line)[1]
        return dumps(document(self._rebuild(line, revision)))

    def state_at_offset(self, line: str, offset: int) -> dict[str, Any]:
        """The line's state after every event up to log ``offset`` (for retention snapshots)."""
        state = self._start_state(line, None)
        for e in self.log.iter_all(state["offset"], upto=offset, line=line):
            apply(state, e.cloudevent(), e.offset)
        return state

    def snapshot_rows(self, offset: int) -> list[dict[str, Any]]:
        """Snapshot rows of every line at log ``offset`` (written when retention cuts there)."""
        rows = []
        for line in self.lines():
            state = self.state_at_offset(line, offset)
            if state["revision"]:
                rows.append({"line_id": line, "revision": state["revision"], "state": dumps(state)})
        return rows

    def _require(self, line: str) -> dict[str, Any]:
        state = self._states.get(line)
        if state is None:
            known = ", ".join(sorted(self._states)) or "none yet"
            raise UnknownLine(f"no twin for line {line!r} (lines: {known})")
        return state

    def _start_state(self, line: str, revision: int | None) -> dict[str, Any]:
        """The newest snapshot at or below ``revision`` (or an empty state), checked against retention."""
        query = select(twin_snapshots.c.state).where(twin_snapshots.c.line_id == line)
        if revision is not None:
            query = query.where(twin_snapshots.c.revision <= revision)
        with self.log.engine.connect() as conn:
            text = conn.execute(query.order_by(twin_snapshots.c.revision.desc()).limit(1)).scalar()
        state = json.loads(text) if text else new_state(line)
        if state["offset"] + 1 < self.log.first and state["revision"] != revision:
            nxt = self.log.read(self.log.first - 1, 1, line=line)
            if not nxt or nxt[0].sequence != state["revision"] + 1:
                raise OffsetExpired(
                    f"revision {revision} of line {line!r} is older than retention keeps", self.log.first
                )
        return state

    def _rebuild(self, line: str, revision: int | None) -> dict[str, Any]:
        state = self._start_state(line, revision)
        for e in self.log.iter_all(state["offset"], line=line):
            if revision is not None and e.sequence > revision:
                break
            apply(state, e.cloudevent(), e.offset)
        return state

    def _on_events(self, batch: Sequence[Event]) -> None:
        with self._lock:
            for e in batch:
                state = self._states.get(e.line_id)
                if state is None:
                    state = self._states[e.line_id] = new_state(e.line_id)
                if e.sequence <= state["revision"]:
                    continue
                if e.sequence != state["revision"] + 1:
                    log.warning("twin %s: sequence %d follows %d", e.line_id, e.sequence, state["revision"])
                apply(state, e.cloudevent(), e.offset)
                self._texts.pop(e.line_id, None)
