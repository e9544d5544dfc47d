"""``twinspect models status / history / activate --line / rollback / promote / shadow / report``.

These change the data dir's database (each version's state per line, the history). A service
running on that data dir picks a change up within a second (it swaps between batches and
announces the event); a line that is not running serves it, and announces it, at its next start.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.common import ConfigOption, DataDirOption, settings_from

if TYPE_CHECKING:
    from api.model_desk import ModelDesk
    from api.settings import Settings

LineOption = Annotated[str | None, typer.Option("--line", help="Line id (default: the config's line.line_id).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the line's model history).")]
WeightsDirOption = Annotated[
    Path | None, typer.Option("--weights-dir", help="Model registry folder (default: the configured model's).")
]
RoleOption = Annotated[str, typer.Option("--role", help="Which of the line's models: defect or part.")]
NOTE = "a service running on this data dir swaps within a second; otherwise the line serves it at its next start"


def who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def open_desk(
    config: Path | None,
    data_dir: Path | None,
    line: str | None,
    weights_dir: Path | None,
    role: str = "defect",
    model: str | None = None,
) -> tuple[ModelDesk, Settings]:
    """The desk of ``line`` and ``role`` on the data dir's database (no engine, no event log: see the module
    docstring). ``model`` (NAME:VERSION) picks the role itself: its card's task."""
    from api.model_desk import ROLES, DeskParts, ModelDesk, role_of
    from api.model_runtime import registry_of
    from inspection.core.errors import ModelError
    from inspection.ml.registry import parse_model_ref
    from inspection.store import ModelStates, Version, open_database

    settings = settings_from(config, data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if role not in ROLES:
        raise ModelError(f"--role: must be one of {', '.join(ROLES)}, got {role!r}")
    registry = weights_dir or registry_of(settings, role)
    if model is not None:
        role = role_of(registry, Version(*parse_model_ref(model)))
    parts = DeskParts(
        registry,
        line or settings.line.line_id,
        settings.sync.edge_id,
        role=role,
        gate=settings.delivery.gate.config(),
        shadow=settings.delivery.shadow.config(),
        gate_data=settings.delivery.gate.data if role == "defect" else None,
        goldens=settings.goldens_dir,
        rules=settings.line.rules,
        watch_boards=settings.delivery.watch.boards,
        watch_p=settings.delivery.watch.p_value,
    )
    desk = ModelDesk(ModelStates(open_database(settings.database_url)), parts)
    desk.sync_registry()
    return desk, settings


def status_cmd(
    line: LineOption = None,
    role: RoleOption = "defect",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    weights_dir: WeightsDirOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Every registered version of the role with its state on the line (registered, shadow, active, retired)."""
    desk, _ = open_desk(config, data_dir, line, weights_dir, role)
    rows = desk.listing()
    if as_json:
        typer.echo(json.dumps({"line_id": desk.line_id, "role": desk.role, "versions": rows}))
        return
    typer.echo(
        f"line {desk.line_id} ({desk.role} model): active {desk.active() or 'none'}, shadow {desk.shadow() or 'none'}"
    )
    watch = desk.watch()
    if watch is not None:
        alerts = ", ".join(f"{a['metric']} {a['previous_rate']} -> {a['rate']}" for a in watch.get("alerts", []))
        typer.echo(
            f"watch after {watch['model']} (was {watch['previous']}): {watch['boards']} of {watch['needed']} boards"
            + (f"; ALERT: {alerts}" if alerts else "; no significant change" if watch["done"] else "")
        )
    for r in rows:
        vm = r["val_metrics"]
        typer.echo(
            f"  {r['name']}:{r['version']:<4d} {r['state']:10s} input {r['input']:9s} "
            f"mAP50 {vm.get('map50')}  DeepPCB-F {vm.get('deeppcb_fscore')}  created {r['created_at']}"
        )


def history_cmd(
    line: LineOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    weights_dir: WeightsDirOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The line's model changes, newest first: who, when, why, from which version."""
    desk, _ = open_desk(config, data_dir, line, weights_dir)
    changes = desk.states.history(desk.line_id)
    if as_json:
        typer.echo(json.dumps([change_json(c) for c in changes]))
        return
    for c in changes:
        forced = " FORCED" if c.forced else ""
        typer.echo(
            f"{c.at.isoformat(timespec='seconds')} {c.role:6s} {c.action:14s} {c.model} (from {c.previous or '-'}) "
            f"by {c.who}{forced}: {c.why}"
        )


def change_json(c: object) -> dict[str, object]:
    from inspection.store import Change

    assert isinstance(c, Change)
    return {
        "id": c.id,
        "line_id": c.line_id,
        "role": c.role,
        "action": c.action,
        "model": str(c.model),
        "previous": c.previous,
        "who": c.who,
        "why": c.why,
        "at": c.at.isoformat(),
        "forced": c.forced,
        "announced": c.announced,
    }


def rollback_cmd(
    line: LineOption = None,
    role: RoleOption = "defect",
    reason: ReasonOption = "rollback",
    weights_dir: WeightsDirOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Return the line's model of the role to the version active before the current one (none: one line, exit 2)."""
    desk, _ = open_desk(config, data_dir, line, weights_dir, role)
    change = desk.rollback(who(), reason)
    typer.echo(f"line {desk.line_id}: {change.model} active again (was {change.previous}); {NOTE}")


def promote_cmd(
    model: Annotated[str, typer.Argument(help="The candidate: NAME:VERSION.")],
    line: LineOption = None,
    reason: ReasonOption = "promotion",
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the gate refuses (admin; audited as forced).")
    ] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Data YAML of the gate set.")] = None,
    weights_dir: WeightsDirOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Gate the candidate against the active model of its role (export parity, val split, reviewed boards), then
    activate it."""
    from api.model_desk import GateRefused
    from api.model_gate import line_gate
    from api.runtime import open_storage
    from inspection.ml.registry import parse_model_ref
    from inspection.store import Version

    desk, settings = open_desk(config, data_dir, line, weights_dir, model=model)
    store, _ = open_storage(settings, desk.states.engine)
    gate = line_gate(desk.parts, store, data)
    try:
        result = desk.promote(Version(*parse_model_ref(model)), who(), reason, gate, force)
    except GateRefused as refused:  # both models side by side on stdout, the refusal as the one error line
        for row in refused.result.table():
            typer.echo(row)
        raise
    for row in result.table():
        typer.echo(row)
    typer.echo(f"line {desk.line_id}: {model} promoted{' (FORCED past the gate)' if not result.passed else ''}; {NOTE}")


def shadow_cmd(
    model: Annotated[str | None, typer.Argument(help="NAME:VERSION to run in shadow (omit with --stop).")] = None,
    line: LineOption = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the line's shadow run.")] = False,
    reason: ReasonOption = "shadow run",
    weights_dir: WeightsDirOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run a candidate beside the active model on the line's boards (off the critical path, stored apart)."""
    from inspection.core.errors import ModelError
    from inspection.ml.registry import parse_model_ref
    from inspection.store import Version

    desk, _ = open_desk(config, data_dir, line, weights_dir, model=model)
    if stop:
        change = desk.stop_shadow(who(), reason)
        typer.echo(f"line {desk.line_id}: shadow {change.model if change else 'none'} stopped; {NOTE}")
        return
    if model is None:
        raise ModelError("name the model to run in shadow (NAME:VERSION), or --stop")
    change = desk.start_shadow(Version(*parse_model_ref(model)), who(), reason)
    typer.echo(f"line {desk.line_id}: {change.model} in shadow beside {desk.active() or 'none'}; {NOTE}")


def report_cmd(
    line: LineOption = None,
    model: Annotated[str | None, typer.Option("--model", help="NAME:VERSION (default: the line's shadow).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    weights_dir: WeightsDirOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The shadow report: both models on the boards the shadow saw, against QA's reviewed verdicts."""
    from inspection.ml.registry import parse_model_ref
    from inspection.store import Version

    desk, _ = open_desk(config, data_dir, line, weights_dir)
    rep = desk.shadow_report(Version(*parse_model_ref(model)) if model else None)
    if as_json:
        typer.echo(json.dumps(rep))
        return
    typer.echo(
        f"line {desk.line_id}: shadow {rep['shadow']} beside {rep['active']}: {rep['boards']} boards, "
        f"{rep['reviewed']} reviewed, {rep['disagreements']} disagreements"
    )
    a, s = rep["models"]["active"], rep["models"]["shadow"]
    typer.echo(f"{'':22s} {'active':>10s} {'shadow':>10s}")
    for key in ("missed", "false_rejects", "miss_rate", "false_reject_rate", "agreement_with_review"):
        typer.echo(f"{key:22s} {a[key]!s:>10s} {s[key]!s:>10s}")
    for c in sorted(set(a["class_recall"]) | set(s["class_recall"])):
        typer.echo(f"{'recall ' + c:22s} {a['class_recall'].get(c)!s:>10s} {s['class_recall'].get(c)!s:>10s}")
    for d in rep["disagreeing"][:20]:
        typer.echo(f"  {d['inspection_id']}  active {d['active']:9s} shadow {d['shadow']:9s} now {d['final']}")


def add_commands(app: typer.Typer) -> None:
    """Add these commands to ``twinspect models``."""
    app.command("status")(status_cmd)
    app.command("history")(history_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("promote")(promote_cmd)
    app.command("shadow")(shadow_cmd)
    app.command("report")(report_cmd)
