"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import errors
from api.limits import DECODE_THREADS, BodyLimits
from api.routers import (
    docs,
    events,
    export,
    health,
    inspections,
    lines,
    live,
    metrics,
    models,
    pages,
    process,
    push,
    recipes,
    session,
    stats,
    twin,
)
from api.services import Services

STATIC = Path(__file__).parent / "static"


def create_app(services: Services) -> FastAPI:
    """Build the app around running services; the lifespan starts and stops the engine."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services.sync is not None:
            services.sync.start()
        if services.engine is not None:
            services.engine.start()
        try:
            yield
        finally:
            if services.engine is not None:
                services.engine.stop()
            if services.sync is not None:
                services.sync.stop()

    if services.tokens is None:
        raise ValueError("Services.tokens is required: every endpoint checks its caller's role")
    app = FastAPI(
        title="twinspect",
        version="0.1.0",
        lifespan=lifespan,
        description="Vision inspection of production lines with a synchronized digital twin.",
        docs_url=None,  # served by api/routers/docs.py with local assets (no CDN)
        redoc_url=None,
    )
    app.state.services = services
    app.state.decode_limiter = anyio.CapacityLimiter(DECODE_THREADS)  # pushed frames decoding at once
    errors.install(app)
    app.add_middleware(BodyLimits, services=services)  # every body bounded before anything reads it
    for router in (
        pages.router,
        live.router,
        push.router,
        metrics.router,
        events.router,
        twin.router,
        session.router,
        inspections.router,
        stats.router,
        models.router,
        export.router,
        recipes.router,
        lines.router,
        process.router,
        health.router,
        docs.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app
