"""Prometheus metrics at ``GET /metrics``.

Any twinspect token may read them (``Authorization: Bearer <token>``; a Prometheus job sets
``authorization: {credentials_file: ...}``); with ``metrics.public: true`` in the settings
(``TWINSPECT_METRICS__PUBLIC=true``) they are served without one, for a scraper inside a
trusted network.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import require
from api.tokens import Role

_ANY_TOKEN = require(*Role)


def _allowed(request: Request) -> None:
    if not request.app.state.services.metrics_public:
        _ANY_TOKEN(request)


router = APIRouter(tags=["metrics"], dependencies=[Depends(_allowed)])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (any token as Authorization: Bearer; none with metrics.public: true)",
)
def metrics(request: Request) -> Response:
    engine = request.app.state.services.engine
    body = engine.metrics() if engine is not None else generate_latest()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
