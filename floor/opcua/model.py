"""The address space: one ``VisionSystem`` per line, shaped after OPC 40100 (Machine Vision) as far as it fits.

    Objects/VisionSystems/<line>                       VisionSystemType, emits ResultReady
        VisionStateMachine/CurrentState                Preoperational | Halted | Operational | Error
        VisionStateMachine/Reset()                     -> Status                 (role ml or admin)
        RecipeManagement/ActiveRecipe, SelectRecipe(RecipeId) -> Status   (role ml or admin)
        ConfigurationManagement/DefectModel, PartModel  "name vVERSION"
        ResultManagement/LastResult/{ResultId, PartId, InspectionId, CameraId, Verdict, DefectCount,
                                     DefectClasses, CaptureTime, Sequence}
        ResultManagement/GetLatestResult(), GetResultById(ResultId)
            -> ResultId, PartId, Verdict, DefectCount, DefectClasses[], CaptureTime, ResultJson
        Counters/{Inspected, Pass, Fail, Uncertain, Uninspected, Coverage, Yield}
        ProcessControl/{<chart>: "in_control" | "drifting since <time>"}   (added as charts appear)
        RejectGate/{Decision, DecisionPartId, DecisionSequence, Heartbeat, LateCount, SlackP50Ms, SlackP99Ms}

The real companion specification lives in its own namespace with its own type ids; twinspect
serves the same browse names and states in its namespace (``opcua.namespace``), with type
definitions of the same names, so a client written for OPC 40100 finds its way by browse name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncua import Node, Server, ua

VT = ua.VariantType
RESULT_OUTPUTS = (
    ("ResultId", VT.String),
    ("PartId", VT.String),
    ("Verdict", VT.String),
    ("DefectCount", VT.UInt32),
    ("DefectClasses", VT.String),  # an array (ValueRank 1)
    ("CaptureTime", VT.DateTime),
    ("ResultJson", VT.String),
)
LAST_RESULT: tuple[tuple[str, Any, ua.VariantType], ...] = (
    ("ResultId", "", VT.String),
    ("PartId", "", VT.String),
    ("InspectionId", "", VT.String),
    ("CameraId", "", VT.String),
    ("Verdict", "", VT.String),
    ("DefectCount", 0, VT.UInt32),
    ("DefectClasses", [], VT.String),
    ("CaptureTime", datetime(1970, 1, 1, tzinfo=UTC), VT.DateTime),
    ("Sequence", 0, VT.UInt64),
)
COUNTERS = (
    ("Inspected", 0, VT.UInt64),
    ("Pass", 0, VT.UInt64),
    ("Fail", 0, VT.UInt64),
    ("Uncertain", 0, VT.UInt64),
    ("Uninspected", 0, VT.UInt64),
    ("Coverage", 1.0, VT.Double),
    ("Yield", 0.0, VT.Double),
)
GATE = (
    ("Decision", "", VT.String),
    ("DecisionPartId", "", VT.String),
    ("DecisionSequence", 0, VT.UInt32),
    ("Heartbeat", 0, VT.UInt32),
    ("LateCount", 0, VT.UInt64),
    ("SlackP50Ms", 0.0, VT.Double),
    ("SlackP99Ms", 0.0, VT.Double),
)
RESULT_READY_FIELDS = [
    ("ResultId", VT.String),
    ("PartId", VT.String),
    ("Verdict", VT.String),
    ("DefectCount", VT.UInt32),
    ("DefectClasses", VT.String),  # comma separated
    ("CaptureTime", VT.DateTime),
    ("ResultJson", VT.String),
]
Method = Callable[..., Awaitable[list[ua.Variant]]]


@dataclass
class LineNodes:
    """The variable nodes of one line's VisionSystem, by browse name."""

    system: Node
    state: Node
    recipe: Node
    models: dict[str, Node]
    last: dict[str, Node]
    counters: dict[str, Node]
    gate: dict[str, Node]
    process_folder: Node
    process: dict[str, Node] = field(default_factory=dict)
    methods: dict[str, Node] = field(default_factory=dict)


@dataclass
class Types:
    vision_system: Node
    result_ready: Node


def argument(name: str, vtype: ua.VariantType, description: str = "", array: bool = False) -> ua.Argument:
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(vtype.value)  # type: ignore[arg-type]
    arg.ValueRank = 1 if array else -1
    arg.ArrayDimensions = [0] if array else []
    arg.Description = ua.LocalizedText(description or name)
    return arg


async def make_types(server: Server, idx: int) -> Types:
    base = ua.NodeId(ua.ObjectIds.BaseObjectType)  # type: ignore[arg-type]
    vision = await server.nodes.base_object_type.add_object_type(idx, "VisionSystemType")
    for name in ("VisionStateMachineType", "RecipeManagementType", "ResultManagementType"):
        await server.get_node(base).add_object_type(idx, name)
    ready = await server.create_custom_event_type(
        idx, "ResultReadyEventType", ua.ObjectIds.BaseEventType, RESULT_READY_FIELDS
    )
    return Types(vision, ready)


async def _variables(parent: Node, idx: int, specs: tuple[tuple[str, Any, ua.VariantType], ...]) -> dict[str, Node]:
    out = {}
    for name, value, vtype in specs:
        out[name] = await parent.add_variable(idx, name, ua.Variant(value, vtype, is_array=isinstance(value, list)))
    return out


async def make_line(
    server: Server, idx: int, root: Node, types: Types, line_id: str, methods: dict[str, Method]
) -> LineNodes:
    """The VisionSystem of ``line_id`` with its variables and methods (``methods`` by browse name)."""
    system = await root.add_object(idx, line_id, objecttype=types.vision_system.nodeid)
    machine = await system.add_object(idx, "VisionStateMachine")
    state = await machine.add_variable(idx, "CurrentState", ua.Variant("Preoperational", VT.String))
    recipes = await system.add_object(idx, "RecipeManagement")
    recipe = await recipes.add_variable(idx, "ActiveRecipe", ua.Variant("", VT.String))
    config = await system.add_object(idx, "ConfigurationManagement")
    models = await _variables(config, idx, (("DefectModel", "", VT.String), ("PartModel", "", VT.String)))
    results = await system.add_object(idx, "ResultManagement")
    last = await _variables(await results.add_object(idx, "LastResult"), idx, LAST_RESULT)
    counters = await _variables(await system.add_object(idx, "Counters"), idx, COUNTERS)
    gate = await _variables(await system.add_object(idx, "RejectGate"), idx, GATE)
    process = await system.add_object(idx, "ProcessControl")
    nodes = LineNodes(system, state, recipe, models, last, counters, gate, process)
    outputs = [argument(n, t, array=(n == "DefectClasses")) for n, t in RESULT_OUTPUTS]
    status = [argument("Status", VT.String)]
    nodes.methods["Reset"] = await machine.add_method(idx, "Reset", methods["Reset"], [], status)
    nodes.methods["SelectRecipe"] = await recipes.add_method(
        idx,
        "SelectRecipe",
        methods["SelectRecipe"],
        [argument("RecipeId", VT.String, description="Recipe name")],
        status,
    )
    nodes.methods["GetLatestResult"] = await results.add_method(
        idx, "GetLatestResult", methods["GetLatestResult"], [], outputs
    )
    nodes.methods["GetResultById"] = await results.add_method(
        idx,
        "GetResultById",
        methods["GetResultById"],
        [argument("ResultId", VT.String, "A part id or an inspection id")],
        outputs,
    )
    return nodes
