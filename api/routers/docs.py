"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, served with no network.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a line network without
internet ``/docs`` stays blank. The assets come from the ``fastapi-offline`` package (MIT; it
ships ``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js``) and are served
here under ``/docs/assets/``; nothing is fetched from outside. Public, like the OpenAPI
document itself: the pages hold no data, and every call made from them needs a token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from api.errors import NotFound

try:
    import fastapi_offline

    ASSETS: Path | None = Path(fastapi_offline.__file__).parent / "static"
except ImportError:  # pragma: no cover - the package is in requirements.lock
    ASSETS = None

PREFIX = "/docs/assets"
FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
CACHE = {"Cache-Control": "public, max-age=86400"}
# Nothing from outside, even if the browser could reach it (ReDoc links a logo on its CDN: blocked, so never fetched).
CSP = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; font-src 'self' data:; connect-src 'self'"
}

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root, app = _root(request), request.app
    page = get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - API",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
        swagger_js_url=f"{root}{PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{root}{PREFIX}/favicon.png",
    )
    page.headers.update(CSP)
    return page


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root, app = _root(request), request.app
    page = get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - API",
        redoc_js_url=f"{root}{PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{PREFIX}/favicon.png",
        with_google_fonts=False,
    )
    page.headers.update(CSP)
    return page


@router.get(PREFIX + "/{name}")
def asset(name: str) -> FileResponse:
    if name not in FILES or ASSETS is None or not (ASSETS / name).is_file():
        raise NotFound(f"{name}: not a documentation asset")
    return FileResponse(ASSETS / name, media_type=FILES[name], headers=CACHE)
