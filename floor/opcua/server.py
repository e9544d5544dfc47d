"""The OPC UA server of one line (asyncua), on its own thread and event loop.

It follows what is already produced, never the engine's insides: committed events of the line
arrive through a bounded outlet (``LogTap``), the gate's decisions through another, the vision
state is read from ``Engine.status()`` every 0.25 s. On each batch of committed events it
updates ``LastResult`` and fires one ``ResultReady`` event per verdict, then reads the counters,
recipe, models and process states from the line's twin (so they agree with every other view).
A stalled client or a slow server drops into the outlet's counted drops; the line never waits.

Methods answer with OPC UA status codes: ``BadArgumentsMissing`` / ``BadTooManyArguments`` /
``BadTypeMismatch`` / ``BadInvalidArgument`` for malformed arguments, ``BadNotFound`` for an
unknown result or recipe, ``BadInvalidState`` when the line cannot do it (no golden-reference
model), ``BadUserAccessDenied`` for a role that may not (``floor.opcua.auth``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncua import Server, ua
from asyncua.crypto import uacrypto

from floor.config import OpcUaSettings
from floor.errors import FloorError
from floor.gate import Beat, Decision, GateOutput
from floor.opcua.auth import LineUsers, RoleRules, Verify, caller
from floor.opcua.model import LineNodes, make_line, make_types
from floor.outlet import Outlet
from floor.results import Counters, RecentResults, Result, VisionState, vision_state
from inspection.pipeline.status import EngineStatus
from sync.events import Event

log = logging.getLogger(__name__)
VT = ua.VariantType
EVENT_TYPES = frozenset(
    {
        "part.inspected",
        "part.uninspected",
        "part.entered",
        "line.started",
        "line.stopped",
        "camera.online",
        "camera.offline",
        "model.activated",
        "line.recipe_changed",
        "review.corrected",
        "process.drift",
        "process.in_control",
    }
)


class MethodRefused(Exception):
    """A method the line refuses: ``status`` is the OPC UA status code the caller gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LineHooks:
    """What the server may ask of the rest of twinspect (given by ``api``, which owns those paths)."""

    verify: Verify  # (user name, token) -> (name, role) or None
    select_recipe: Callable[[str, str], str]  # (recipe, who) -> message; raises MethodRefused
    reset: Callable[[str], str]  # who -> message
    lookup: Callable[[str], Result | None]  # a stored result by inspection id (beyond the recent ones)
    status: Callable[[], EngineStatus | None]
    running: Callable[[], bool]
    twin: Callable[[str], dict[str, Any] | None]  # the line's twin document, None before its first event


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _variants(r: Result) -> list[ua.Variant]:
    return [
        ua.Variant(r.result_id, VT.String),
        ua.Variant(r.part_id, VT.String),
        ua.Variant(r.verdict, VT.String),
        ua.Variant(r.defect_count, VT.UInt32),
        ua.Variant(list(r.classes), VT.String, is_array=True),
        ua.Variant(_when(r.capture_time), VT.DateTime),
        ua.Variant(r.json(), VT.String),
    ]


def one_string(args: tuple[Any, ...], name: str, max_len: int = 200) -> str:
    """The single String argument of a method, or MethodRefused with the status that says what is wrong."""
    if not args:
        raise MethodRefused(ua.StatusCodes.BadArgumentsMissing, f"{name} is missing")
    if len(args) > 1:
        raise MethodRefused(ua.StatusCodes.BadTooManyArguments, f"one argument ({name}), got {len(args)}")
    value = args[0].Value if isinstance(args[0], ua.Variant) else args[0]
    if not isinstance(value, str):
        raise MethodRefused(ua.StatusCodes.BadTypeMismatch, f"{name} must be a String")
    if not value.strip() or len(value) > max_len:
        raise MethodRefused(ua.StatusCodes.BadInvalidArgument, f"{name}: 1-{max_len} characters")
    return value


class OpcUaServer(GateOutput):
    """See the module docstring."""

    def __init__(self, settings: OpcUaSettings, line_id: str, hooks: LineHooks, recent: RecentResults) -> None:
        self.settings, self.line_id, self.hooks, self.recent = settings, line_id, hooks, recent
        self.name = "opcua"
        self.outlet: Outlet[Event] = Outlet("opcua", settings.queue)
        self.decisions: Outlet[Decision | Beat] = Outlet("opcua-gate", 1024)
        self.endpoint = f"opc.tcp://{settings.host}:{settings.port}/twinspect/"
        self.rules = RoleRules()
        self.users: LineUsers | None = None
        self.nodes: LineNodes | None = None
        self.results_fired = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="opcua-wait")

    # GateOutput ------------------------------------------------------------------------------------
    def offer(self, item: Decision | Beat) -> bool:
        return self.decisions.offer(item)

    # lifecycle -------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Serve; FloorError (one line) when the server cannot start (the port taken, a bad certificate)."""
        logging.getLogger("asyncua").setLevel(max(logging.WARNING, logging.getLogger("asyncua").level))
        self._thread = threading.Thread(target=self._run, name="opcua", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise FloorError(f"opcua: the server did not start within {timeout:.0f} s")
        if self._error is not None:
            raise FloorError(f"opcua: cannot serve on {self.endpoint}: {self._error}") from None
        log.info("opcua: serving line %s on %s", self.line_id, self.endpoint)

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            server = await self._build()
            await server.start()
        except Exception as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        tasks = [asyncio.create_task(t) for t in (self._events(), self._gate(), self._watch_state())]
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.stop()

    async def _build(self) -> Server:
        s = self.settings
        certificates: dict[bytes, tuple[str, str]] = {}
        for user in s.users:
            cert = await uacrypto.load_certificate(user.certificate)
            certificates[uacrypto.der_from_x509(cert)] = (user.name, user.role)
        self.users = LineUsers(self.hooks.verify, certificates, s.allow_anonymous)
        server = Server(user_manager=self.users)  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"twinspect {self.line_id}")
        await server.set_application_uri(f"urn:twinspect:{self.line_id}")
        policies = [ua.SecurityPolicyType.NoSecurity]
        tokens: list[type] = [ua.UserNameIdentityToken]
        if s.certificate is not None and s.private_key is not None:
            await server.load_certificate(str(s.certificate))
            await server.load_private_key(str(s.private_key))
            policies += [
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
            ]
            tokens.append(ua.X509IdentityToken)
        if s.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_security_policy(policies, permission_ruleset=self.rules)  # type: ignore[arg-type]
        server.set_identity_tokens(tokens)
        idx = await server.register_namespace(s.namespace)
        types = await make_types(server, idx)
        root = await server.nodes.objects.add_folder(idx, "VisionSystems")
        self.nodes = await make_line(server, idx, root, types, self.line_id, self._methods())
        for name in ("SelectRecipe", "Reset"):
            self.rules.protect(self.nodes.methods[name].nodeid)
        self._event = await server.get_event_generator(types.result_ready, self.nodes.system.nodeid)
        self._server, self._idx, self._types = server, idx, types
        await self._refresh()
        return server

    # updates ---------------------------------------------------------------------------------------
    async def _take(self, outlet: Outlet[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(self._pool, outlet.take, 0.25)
        return [] if first is None else outlet.take_all(first)

    async def _events(self) -> None:
        while True:
            batch = [e for e in await self._take(self.outlet) if e.line_id == self.line_id]
            if not batch:
                continue
            try:
                for event in batch:
                    if event.type == "part.inspected":
                        await self._result(Result.of(event))
                await self._refresh()
                self.outlet.done(True, len(batch))
            except Exception:
                self.outlet.done(False, len(batch))
                log.exception("opcua: updating the address space failed")

    async def _result(self, r: Result) -> None:
        assert self.nodes is not None
        self.recent.add(r)
        last = self.nodes.last
        values: list[tuple[str, Any, ua.VariantType]] = [
            ("ResultId", r.result_id, VT.String),
            ("PartId", r.part_id, VT.String),
            ("InspectionId", r.inspection_id or "", VT.String),
            ("CameraId", r.camera_id, VT.String),
            ("Verdict", r.verdict, VT.String),
            ("DefectCount", r.defect_count, VT.UInt32),
            ("DefectClasses", list(r.classes), VT.String),
            ("CaptureTime", _when(r.capture_time), VT.DateTime),
            ("Sequence", r.sequence, VT.UInt64),
        ]
        for name, value, vtype in values:
            await last[name].write_value(ua.Variant(value, vtype, is_array=isinstance(value, list)))
        ev = self._event.event
        ev.ResultId, ev.PartId, ev.Verdict = r.result_id, r.part_id, r.verdict
        ev.DefectCount = ua.Variant(r.defect_count, VT.UInt32)
        ev.DefectClasses, ev.CaptureTime, ev.ResultJson = ",".join(r.classes), _when(r.capture_time), r.json()
        ev.Severity = 500 if r.verdict == "fail" else 300 if r.verdict == "uncertain" else 100
        await self._event.trigger(message=f"{r.part_id}: {r.verdict} ({r.defect_count} defects)")
        self.results_fired += 1

    async def _refresh(self) -> None:
        """Counters, recipe, models and process states from the line's twin."""
        assert self.nodes is not None
        doc = self.hooks.twin(self.line_id)
        if doc is None:
            return
        c = Counters.of_twin(doc)
        figures = (c.inspected, c.passed, c.failed, c.uncertain, c.uninspected)
        for name, value in zip(("Inspected", "Pass", "Fail", "Uncertain", "Uninspected"), figures, strict=True):
            await self.nodes.counters[name].write_value(ua.Variant(value, VT.UInt64))
        await self.nodes.counters["Coverage"].write_value(ua.Variant(c.coverage, VT.Double))
        await self.nodes.counters["Yield"].write_value(ua.Variant(c.yield_, VT.Double))
        features = doc["features"]
        recipe = features["recipe"]["properties"].get("name") or ""
        await self.nodes.recipe.write_value(ua.Variant(recipe, VT.String))
        for role, node in (("defect", self.nodes.models["DefectModel"]), ("part", self.nodes.models["PartModel"])):
            model = features["models"]["properties"].get(role)
            text = f"{model['name']} v{model['version']}" if model else ""
            await node.write_value(ua.Variant(text, VT.String))
        for chart, state in features.get("process", {}).get("properties", {}).items():
            await self._process(chart, state)

    async def _process(self, chart: str, state: dict[str, Any]) -> None:
        assert self.nodes is not None
        text = (
            f"drifting since {state['since']} (rule {state['rule']})" if state["state"] == "drifting" else "in_control"
        )
        node = self.nodes.process.get(chart)
        if node is None:
            node = await self.nodes.process_folder.add_variable(self._idx, chart, ua.Variant(text, VT.String))
            self.nodes.process[chart] = node
        else:
            await node.write_value(ua.Variant(text, VT.String))

    async def _watch_state(self) -> None:
        shown: VisionState | None = None
        while True:
            state = vision_state(self.hooks.status(), self.hooks.running())
            if state is not shown and self.nodes is not None:
                await self.nodes.state.write_value(ua.Variant(state.value, VT.String))
                shown = state
            await asyncio.sleep(0.25)

    async def _gate(self) -> None:
        while True:
            for item in await self._take(self.decisions):
                assert self.nodes is not None
                g = self.nodes.gate
                if isinstance(item, Beat):
                    await g["Heartbeat"].write_value(ua.Variant(item.count & 0xFFFFFFFF, VT.UInt32))
                    await g["LateCount"].write_value(ua.Variant(item.late, VT.UInt64))
                    await g["SlackP50Ms"].write_value(ua.Variant(item.slack_p50_ms, VT.Double))
                    await g["SlackP99Ms"].write_value(ua.Variant(item.slack_p99_ms, VT.Double))
                else:
                    await g["Decision"].write_value(ua.Variant(item.action.value, VT.String))
                    await g["DecisionPartId"].write_value(ua.Variant(item.part_id, VT.String))
                    await g["DecisionSequence"].write_value(ua.Variant(item.sequence & 0xFFFFFFFF, VT.UInt32))
                self.decisions.done(True)

    # methods ---------------------------------------------------------------------------------------
    def _methods(self) -> dict[str, Callable[..., Any]]:
        return {
            "GetLatestResult": self._guarded(self._latest),
            "GetResultById": self._guarded(self._by_id),
            "SelectRecipe": self._guarded(self._select_recipe),
            "Reset": self._guarded(self._reset),
        }

    def _guarded(self, method: Callable[..., Any]) -> Callable[..., Any]:
        async def call(parent: ua.NodeId, *args: Any) -> Any:
            try:
                return await method(*args)
            except MethodRefused as refused:
                log.info("opcua: %s refused: %s", method.__name__.strip("_"), refused)
                return ua.StatusCode(refused.status)  # type: ignore[arg-type]

        return call

    async def _latest(self, *args: Any) -> list[ua.Variant]:
        if args:
            raise MethodRefused(ua.StatusCodes.BadTooManyArguments, "GetLatestResult takes no argument")
        result = self.recent.latest(self.line_id)
        if result is None:
            raise MethodRefused(ua.StatusCodes.BadNotFound, "no result yet")
        return _variants(result)

    async def _by_id(self, *args: Any) -> list[ua.Variant]:
        result_id = one_string(args, "ResultId")
        result = self.recent.get(result_id)
        if result is None:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._pool, self.hooks.lookup, result_id)
        if result is None:
            raise MethodRefused(ua.StatusCodes.BadNotFound, f"no result {result_id!r}")
        return _variants(result)

    async def _select_recipe(self, *args: Any) -> list[ua.Variant]:
        recipe = one_string(args, "RecipeId", 100)
        who = caller()
        name = who.name if who is not None and who.name else "opcua"
        loop = asyncio.get_running_loop()
        message = await loop.run_in_executor(self._pool, self.hooks.select_recipe, recipe, name)
        return [ua.Variant(message, VT.String)]

    async def _reset(self, *args: Any) -> list[ua.Variant]:
        if args:
            raise MethodRefused(ua.StatusCodes.BadTooManyArguments, "Reset takes no argument")
        who = caller()
        loop = asyncio.get_running_loop()
        message = await loop.run_in_executor(self._pool, self.hooks.reset, who.name if who and who.name else "opcua")
        return [ua.Variant(message, VT.String)]
