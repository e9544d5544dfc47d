"""The OPC UA server with a real asyncua client: browse, read, data changes and events, methods, credentials."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua import uaerrors

from floor.config import OpcUaSettings
from floor.opcua.server import LineHooks, MethodRefused, OpcUaServer
from floor.outlet import LogTap
from floor.results import RecentResults
from inspection.store import open_database
from sync.errors import UnknownLine
from sync.log import EventLog
from sync.twin import TwinStore
from tests.conftest import free_port
from tests.sync.conftest import draft

NS = "urn:twinspect:machinevision"
TOKENS = {"tok-plc": ("plc", "ml"), "tok-view": ("viewer", "twin")}


class Line:
    """An event log, its twin, and the hooks the server calls (recording what it was asked)."""

    def __init__(self, root: Path) -> None:
        self.db = open_database(f"sqlite:///{root / 'line.db'}")
        self.log = EventLog(self.db)
        self.twins = TwinStore(self.log)
        self.recipes: list[tuple[str, str]] = []
        self.resets: list[str] = []

    def verify(self, user: str, password: str) -> tuple[str, str] | None:
        found = TOKENS.get(password)
        return found if found is not None and found[0] == user else None

    def select(self, recipe: str, who: str) -> str:
        if recipe != "pcb-a":
            raise MethodRefused(ua.StatusCodes.BadNotFound, f"no recipe {recipe!r}")
        self.recipes.append((recipe, who))
        return f"line-1 now inspects {recipe}"

    def reset(self, who: str) -> str:
        self.resets.append(who)
        return "reset"

    def twin(self, line: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.twins.document_text(line)[1])  # type: ignore[no-any-return]
        except UnknownLine:
            return None

    def hooks(self) -> LineHooks:
        return LineHooks(self.verify, self.select, self.reset, lambda rid: None, lambda: None, lambda: True, self.twin)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Line, OpcUaServer]]:
    line = Line(tmp_path)
    server = OpcUaServer(OpcUaSettings(enabled=True, port=free_port()), "line-1", line.hooks(), RecentResults())
    tap = LogTap()
    tap.route(server.outlet)
    line.log.add_listener(tap)
    line.log.start()
    server.start()
    yield line, server
    server.stop()
    line.log.stop()
    line.db.dispose()


class Seen:
    def __init__(self) -> None:
        self.changes: list[tuple[str, Any, float]] = []
        self.events: list[Any] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.changes.append((str(node.nodeid), val, time.monotonic()))

    def event_notification(self, event: Any) -> None:
        self.events.append(event)


async def until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def client(server: OpcUaServer, user: str | None = None, password: str | None = None) -> Client:
    c = Client(server.endpoint, timeout=10)
    if user is not None:
        c.set_user(user)
        c.set_password(password or "")
    return c


async def _results_and_methods(line: Line, server: OpcUaServer) -> None:
    async with client(server, "plc", "tok-plc") as c:
        idx = await c.get_namespace_index(NS)
        system = await c.nodes.objects.get_child([f"{idx}:VisionSystems", f"{idx}:line-1"])
        names = {(await n.read_browse_name()).Name for n in await system.get_children()}
        assert {"VisionStateMachine", "RecipeManagement", "ResultManagement", "Counters", "RejectGate"} <= names
        state = await system.get_child([f"{idx}:VisionStateMachine", f"{idx}:CurrentState"])
        assert await state.read_value() in {"Preoperational", "Operational", "Halted", "Error"}
        part = await system.get_child([f"{idx}:ResultManagement", f"{idx}:LastResult", f"{idx}:PartId"])
        inspected = await system.get_child([f"{idx}:Counters", f"{idx}:Inspected"])
        seen = Seen()
        sub = await c.create_subscription(20, seen)
        await sub.subscribe_data_change([part, inspected])
        ready = await c.nodes.root.get_child(
            ["0:Types", "0:EventTypes", "0:BaseEventType", f"{idx}:ResultReadyEventType"]
        )
        await sub.subscribe_events(system, ready)
        await until(lambda: len(seen.changes) >= 2)  # the initial values
        line.log.append([draft("part.inspected", 7, verdict="fail")])
        await until(lambda: any(v == "p7" for _, v, _ in seen.changes) and seen.events)
        await until(lambda: any(v == 1 for n, v, _ in seen.changes if n == str(inspected.nodeid)))
        event = seen.events[-1]
        assert (event.PartId, event.Verdict, event.DefectCount, event.DefectClasses) == ("p7", "fail", 1, "open")
        results = await system.get_child(f"{idx}:ResultManagement")
        out = await results.call_method(f"{idx}:GetLatestResult")
        assert out[:5] == ["p7", "p7", "fail", 1, ["open"]]
        by_id = await results.call_method(f"{idx}:GetResultById", ua.Variant("insp-7", ua.VariantType.String))
        assert by_id[1] == "p7" and json.loads(by_id[6])["inspection_id"] == "insp-7"
        with pytest.raises(uaerrors.BadNotFound):
            await results.call_method(f"{idx}:GetResultById", ua.Variant("nope", ua.VariantType.String))
        with pytest.raises(uaerrors.BadTypeMismatch):
            await results.call_method(f"{idx}:GetResultById", ua.Variant(42, ua.VariantType.Int32))
        with pytest.raises(uaerrors.BadArgumentsMissing):
            await results.call_method(f"{idx}:GetResultById")
        recipes = await system.get_child(f"{idx}:RecipeManagement")
        assert await recipes.call_method(f"{idx}:SelectRecipe", "pcb-a") == "line-1 now inspects pcb-a"
        with pytest.raises(uaerrors.BadNotFound):
            await recipes.call_method(f"{idx}:SelectRecipe", "no-such-recipe")
        machine = await system.get_child(f"{idx}:VisionStateMachine")
        assert await machine.call_method(f"{idx}:Reset") == "reset"
    assert line.recipes == [("pcb-a", "plc")] and line.resets == ["plc"]


def test_browse_read_subscribe_and_call(served: tuple[Line, OpcUaServer]) -> None:
    line, server = served
    asyncio.run(_results_and_methods(line, server))
    assert server.outlet.figures().dropped == 0


async def _roles_and_credentials(server: OpcUaServer) -> None:
    async with client(server, "viewer", "tok-view") as c:  # reads, but may not change the line
        idx = await c.get_namespace_index(NS)
        recipes = await c.nodes.objects.get_child([f"{idx}:VisionSystems", f"{idx}:line-1", f"{idx}:RecipeManagement"])
        assert await (await recipes.get_child(f"{idx}:ActiveRecipe")).read_value() == ""
        with pytest.raises(uaerrors.BadUserAccessDenied):
            await recipes.call_method(f"{idx}:SelectRecipe", "pcb-a")
    for user, password in (("plc", "wrong"), ("viewer", "tok-plc"), (None, None)):
        with pytest.raises((uaerrors.BadUserAccessDenied, uaerrors.BadIdentityTokenRejected)):
            async with client(server, user, password):
                pass


def test_roles_and_wrong_credentials(served: tuple[Line, OpcUaServer]) -> None:
    line, server = served
    asyncio.run(_roles_and_credentials(server))
    assert line.recipes == []


def test_anonymous_reads_when_allowed(tmp_path: Path) -> None:
    line = Line(tmp_path)
    settings = OpcUaSettings(enabled=True, port=free_port(), allow_anonymous=True)
    server = OpcUaServer(settings, "line-1", line.hooks(), RecentResults())
    server.start()

    async def run() -> None:
        async with client(server) as c:
            idx = await c.get_namespace_index(NS)
            machine = await c.nodes.objects.get_child(
                [f"{idx}:VisionSystems", f"{idx}:line-1", f"{idx}:VisionStateMachine"]
            )
            await until(lambda: True)
            assert await (await machine.get_child(f"{idx}:CurrentState")).read_value() == "Preoperational"
            with pytest.raises(uaerrors.BadUserAccessDenied):
                await machine.call_method(f"{idx}:Reset")

    try:
        asyncio.run(run())
    finally:
        server.stop()
        line.db.dispose()
    assert line.resets == []
