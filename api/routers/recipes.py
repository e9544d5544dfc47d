"""Recipes (products) and their golden images: list, show, add, replace; golden images by recipe or by sha256.

Reading needs ``qa``, ``twin`` or ``ml``; adding and replacing needs ``ml`` (admin passes
both). Uploads are multipart forms whose whole body is capped (413 before the rest is
read); a golden that does not decode completely is a 422, an existing name 409, a
replacement of another size 409 (another product) unless ``allow_resize``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.types import Message

from api.auth import READERS, require
from api.line_recipe import follow_replaced_recipe, golden_files, recipe_store
from api.schemas_recipes import RecipeOut, RecipesOut, parse_align, parse_masks, recipe_out
from api.tokens import Principal, Role
from inspection.reference.goldens import check_sha256
from inspection.reference.recipes import NAME_RE, GoldenTooLarge, Recipe, RecipeError

MAX_GOLDEN_BYTES = 32 * 1024 * 1024
MAX_FORM_BYTES = MAX_GOLDEN_BYTES + 256 * 1024  # the golden plus the text fields and multipart framing
IMMUTABLE = "private, max-age=31536000, immutable"


def _too_large(size: int | None) -> str:
    got = f"{size} bytes sent" if size is not None else "more sent"
    return f"golden: the upload is capped at {MAX_GOLDEN_BYTES // (1024 * 1024)} MiB ({got})"


class CappedBodyRoute(APIRoute):
    """Request bodies above MAX_FORM_BYTES get 413 with a reason before they are read.

    A declared Content-Length is checked first; a body sent without one (chunked) is counted
    as it arrives and cut off at the limit.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def capped(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
                return JSONResponse({"detail": _too_large(int(declared)), "error": "GoldenTooLarge"}, status_code=413)
            seen = 0
            upstream = request.receive

            async def receive() -> Message:
                nonlocal seen
                message = await upstream()
                seen += len(message.get("body", b""))
                if seen > MAX_FORM_BYTES:
                    raise HTTPException(413, _too_large(None))
                return message

            return await handler(Request(request.scope, receive))

        return capped


router = APIRouter(prefix="/api/v1", tags=["recipes"], route_class=CappedBodyRoute)
readers = [Depends(require(*READERS))]

RecipeName = Annotated[str, Path(pattern=NAME_RE.pattern, description="Recipe name.")]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256 of the golden image file.")]
MasksField = Annotated[
    str | None,
    Form(
        description="JSON list of rectangles to ignore, golden pixels: "
        '[{"x1": 0, "y1": 0, "x2": 40, "y2": 20, "label": "sticker"}].'
    ),
]
AlignField = Annotated[
    str | None,
    Form(
        description='JSON alignment settings: {"method": "ecc"|"features", '
        '"min_score": 0.8, "work_px": 192, "iterations": 40}.'
    ),
]
DescriptionField = Annotated[str | None, Form(max_length=2000, description="What the product is.")]


def _read_golden(upload: UploadFile) -> bytes:
    data = upload.file.read(MAX_GOLDEN_BYTES + 1)
    if len(data) > MAX_GOLDEN_BYTES:
        raise GoldenTooLarge(_too_large(None))
    return data


def _where(upload: UploadFile) -> str:
    return f"golden ({upload.filename})" if upload.filename else "golden"


def _principal(request: Request) -> Principal:
    return request.state.principal  # type: ignore[no-any-return]


@router.get("/recipes", response_model=RecipesOut, dependencies=readers, summary="Every recipe (product), by name")
def list_recipes(request: Request) -> RecipesOut:
    return RecipesOut(items=[recipe_out(r) for r in recipe_store(request.app.state.services).list()])


@router.get("/recipes/{name}", response_model=RecipeOut, dependencies=readers, summary="One recipe")
def get_recipe(name: RecipeName, request: Request) -> RecipeOut:
    return recipe_out(recipe_store(request.app.state.services).get(name))


def _image(
    data: bytes, media_type: str, sha: str, cache: str, if_none_match: str | None, location: str | None = None
) -> Response:
    etag = f'"{sha}"'
    headers = {"ETag": etag, "Cache-Control": cache}
    if location:
        headers["Content-Location"] = location
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


@router.get(
    "/recipes/{name}/golden",
    dependencies=readers,
    summary="The recipe's golden image as uploaded (ETag = its sha256; revalidate: a replacement changes it)",
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/bmp": {}, "image/tiff": {}}},
        304: {"description": "Not modified"},
    },
)
def recipe_golden(
    name: RecipeName, request: Request, if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None
) -> Response:
    store = recipe_store(request.app.state.services)
    recipe = store.get(name)
    data, media_type = store.golden_file(recipe.golden_sha256)
    return _image(
        data,
        media_type,
        recipe.golden_sha256,
        "private, no-cache",
        if_none_match,
        f"/api/v1/goldens/{recipe.golden_sha256}",
    )


@router.get(
    "/goldens/{sha256}",
    dependencies=readers,
    summary="A golden image by the sha256 of its file (kept after its recipe was replaced)",
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/bmp": {}, "image/tiff": {}}},
        304: {"description": "Not modified"},
    },
)
def golden_by_sha(
    sha256: Sha256,
    request: Request,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    display: Annotated[
        bool, Query(description="An image a browser shows: a TIFF golden converted to PNG, the others as stored.")
    ] = False,
) -> Response:
    data, media_type = golden_files(request.app.state.services).read(check_sha256(sha256))
    if display and media_type == "image/tiff":
        return _image(browser_png(data, sha256), "image/png", f"{sha256}.png", IMMUTABLE, if_none_match)
    return _image(data, media_type, sha256, IMMUTABLE, if_none_match)


def browser_png(data: bytes, sha256: str) -> bytes:
    """A TIFF golden as PNG (browsers do not show TIFF), its pixels unchanged (8- or 16-bit, grey or colour)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    ok, png = (False, None) if image is None else cv2.imencode(".png", image)
    if not ok or png is None:
        raise RecipeError(f"golden image {sha256} does not decode")
    return png.tobytes()


@router.post(
    "/recipes",
    response_model=RecipeOut,
    status_code=201,
    dependencies=[Depends(require(Role.ML))],
    summary="Add a recipe with its golden image (multipart)",
)
def add_recipe(
    request: Request,
    name: Annotated[str, Form(description="Recipe name: 1-100 letters, digits, '.', '-', '_'.")],
    golden: Annotated[UploadFile, File(description="Golden image: JPEG, PNG, BMP or TIFF, at most 32 MiB.")],
    masks: MasksField = None,
    align: AlignField = None,
    description: DescriptionField = None,
) -> RecipeOut:
    store = recipe_store(request.app.state.services)
    recipe = store.add(
        name,
        _read_golden(golden),
        parse_masks(masks or "[]"),
        parse_align(align or "{}"),
        description or "",
        actor=_principal(request).name,
        where=_where(golden),
    )
    return recipe_out(recipe)


@router.put(
    "/recipes/{name}",
    response_model=RecipeOut,
    dependencies=[Depends(require(Role.ML))],
    summary="Replace a recipe (multipart); omitted fields keep their values, the old golden stays readable",
)
def replace_recipe(
    name: RecipeName,
    request: Request,
    golden: Annotated[UploadFile | None, File(description="New golden image (same size unless allow_resize).")] = None,
    masks: MasksField = None,
    align: AlignField = None,
    description: DescriptionField = None,
    allow_resize: Annotated[
        bool, Form(description="Accept a golden of another size (a new product revision).")
    ] = False,
) -> RecipeOut:
    services = request.app.state.services
    store = recipe_store(services)
    current: Recipe = store.get(name)  # 404: create recipes with POST
    data = _read_golden(golden) if golden is not None else store.golden_bytes(current.golden_sha256)
    recipe = store.add(
        name,
        data,
        parse_masks(masks) if masks is not None else current.masks,
        parse_align(align) if align is not None else current.align,
        description if description is not None else current.description,
        actor=_principal(request).name,
        replace=True,
        allow_resize=allow_resize,
        where=_where(golden) if golden is not None else "golden",
    )
    follow_replaced_recipe(services, recipe, _principal(request).name)
    return recipe_out(recipe)
