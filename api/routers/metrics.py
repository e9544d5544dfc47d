"""Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import require
from api.tokens import Role

router = APIRouter(tags=["metrics"], dependencies=[Depends(require(*Role))])


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    engine = request.app.state.services.engine
    body = engine.metrics() if engine is not None else generate_latest()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
