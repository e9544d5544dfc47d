"""``twinspect hub``: one hub for many edge boxes (NATS JetStream in, event log + twins + API out)."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import ConfigOption, DataDirOption, settings_from


def hub_cmd(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: server.port).")] = None,
) -> None:
    """Consume every edge's events from NATS JetStream, keep every line's twin, serve the API."""
    import uvicorn

    from api.app import create_app
    from api.services import Services
    from api.tokens import TokenStore
    from inspection.core.errors import ModelError
    from inspection.inference.cards import read_card
    from inspection.reference.goldens import GoldenFiles
    from inspection.store import EvidenceStore, InspectionStore, open_database
    from sync.hub import Hub
    from sync.hub_store import InspectionProjection
    from sync.service import SyncService

    settings = settings_from(config, data_dir)
    server = settings.server.model_copy(
        update={"host": host or settings.server.host, "port": port or settings.server.port}
    )
    nats = settings.sync.nats
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sync = SyncService.open(open_database(settings.database_url), settings.sync, forwarders=False)
    inspections = InspectionStore(sync.log.engine, EvidenceStore(settings.data_dir / "evidence"))
    goldens = GoldenFiles(settings.goldens_dir)  # the golden images its edges' inspections name, for QA
    projection = InspectionProjection(inspections, nats, goldens=goldens)
    hub = Hub(sync.log, nats, projection=projection)
    sync.leases = hub.lease  # each twin shows whether the edge feeding its line is up
    try:  # the classes the QA UI offers for relabelling: the shipped defect model's, if its card is here
        class_names = tuple(read_card(settings.models.defect.weights)["class_names"])
    except (ModelError, OSError, KeyError, ValueError):
        class_names = ()
    app = create_app(
        Services(
            engine=None,
            sync=sync,
            tokens=TokenStore(sync.log.engine),
            heartbeat_s=settings.sync.feeds.heartbeat_s,
            max_page=settings.sync.feeds.max_page,
            inspections=inspections,
            goldens=goldens,
            class_names=class_names,
            review_events=False,
            metrics_public=settings.metrics.public,
        )
    )
    url = f"http://{server.host}:{server.port}/"
    typer.echo(
        f"twinspect: hub at {url}, consuming stream {nats.stream} ({nats.subject_prefix}.>) "
        f"from {nats.url} as {nats.durable}"
    )
    typer.echo(
        f"  twins at {url}api/v1/twin/LINE (connectivity.readyUntil in the past: its edge stopped or died), "
        f"events at {url}api/v1/events?after=N; "
        f"data in {settings.data_dir}; Ctrl-C stops"
    )
    typer.echo(
        f"  inspections (QA) at {url}api/v1/inspections, evidence and golden images from bucket {nats.evidence_bucket}"
    )
    typer.echo("  read them with a token from: twinspect tokens create --role twin")
    hub.start()
    try:
        uvicorn.run(app, host=server.host, port=server.port, log_level="warning")
    finally:
        hub.stop()
        typer.echo(
            f"twinspect: hub stopped: {hub.ingested} events stored, {hub.duplicates} duplicates dropped, "
            f"{hub.malformed} malformed messages terminated, {projection.stored} "
            f"inspections stored ({projection.pending} evidence and golden images still missing)"
        )
