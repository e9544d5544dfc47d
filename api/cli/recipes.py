"""``twinspect recipes add / list / show / import-deeppcb``: products and their golden images.

Recipes live in the data dir's database, their golden images (kept as given, named by
sha256) under ``<data dir>/goldens``. Bad input (a missing or corrupt golden, a mask
outside it, a bad name or option) is one line naming the file or field, exit code 2.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from api.cli.common import ConfigOption, DataDirOption, settings_from
from inspection.reference.recipe_store import RecipeStore
from inspection.reference.recipes import (
    AlignSettings,
    GoldenSizeMismatch,
    Recipe,
    RecipeError,
    RecipeExists,
    RegionMask,
)

app = typer.Typer(help="Recipes (products) and their golden images.", no_args_is_help=True)

_MASK = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*(?::(.*))?$", re.S)
_OPTION = re.compile(r"^(masks|description)\b")  # store field names that are options here
METHODS = ("ecc", "features")
LISTS = ("trainval.txt", "test.txt")

JsonOption = Annotated[bool, typer.Option("--json", help="JSON instead of text.")]


def open_recipes(config: Path | None, data_dir: Path | None) -> RecipeStore:
    """The recipe store of the data dir's database (migrated to head)."""
    from inspection.store import open_database

    settings = settings_from(config, data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return RecipeStore(open_database(settings.database_url), settings.goldens_dir)


def parse_mask(text: str) -> RegionMask:
    """``x1,y1,x2,y2[:label]`` in golden pixels (x2, y2 exclusive)."""
    m = _MASK.match(text)
    if m is None:
        raise RecipeError(f"--mask {text!r}: expected x1,y1,x2,y2[:label] in whole golden pixels")
    x1, y1, x2, y2 = (int(m.group(i)) for i in range(1, 5))
    try:
        return RegionMask(x1=x1, y1=y1, x2=x2, y2=y2, label=(m.group(5) or "").strip())
    except ValidationError as error:
        first = error.errors()[0]
        raise RecipeError(f"--mask {text!r}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


def align_settings(method: str, min_score: float | None) -> AlignSettings:
    if method not in METHODS:
        raise RecipeError(f"--align-method {method!r}: must be one of {', '.join(METHODS)}")
    values: dict[str, object] = {"method": method}
    if min_score is not None:
        values["min_score"] = min_score
    try:
        return AlignSettings.model_validate(values)
    except ValidationError as error:
        raise RecipeError(f"--min-score {min_score}: {error.errors()[0]['msg']}") from None


def read_golden(path: Path) -> bytes:
    if not path.exists():
        raise RecipeError(f"{path}: no such file")
    if not path.is_file():
        raise RecipeError(f"{path}: not a file")
    try:
        return path.read_bytes()
    except OSError as error:
        raise RecipeError(f"{path}: cannot read it ({error.strerror or error})") from None


def _json(recipe: Recipe) -> str:
    from api.schemas_recipes import recipe_out

    return recipe_out(recipe).model_dump_json()


def _line(r: Recipe) -> str:
    masks = f"{len(r.masks)} mask{'s' if len(r.masks) != 1 else ''}"
    return f"{r.name}  {r.width}x{r.height}  golden {r.golden_sha256[:12]}  {masks}  {r.align.method}  {r.description}"


@app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="Recipe name: 1-100 letters, digits, '.', '-', '_'.")],
    golden: Annotated[
        Path,
        typer.Option(
            "--golden",
            help="Golden image of a defect-free board (JPEG, PNG, BMP, TIFF); stored as given, named by its sha256.",
        ),
    ],
    mask: Annotated[
        list[str] | None,
        typer.Option("--mask", help="Region to ignore, x1,y1,x2,y2[:label] in golden pixels (repeat for more)."),
    ] = None,
    align_method: Annotated[str, typer.Option("--align-method", help="ecc or features.")] = "ecc",
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", help="Alignment score (-1..1) below which a board is uncertain (default 0.8)."),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="What the product is.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Replace a recipe of that name.")] = False,
    allow_resize: Annotated[
        bool,
        typer.Option(
            "--allow-resize", help="With --replace: accept a golden of another size (a new product revision)."
        ),
    ] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a recipe (or replace one with --replace); everything is checked before anything is stored."""
    masks = tuple(parse_mask(m) for m in mask or [])
    align = align_settings(align_method, min_score)
    data = read_golden(golden)
    store = open_recipes(config, data_dir)
    try:
        recipe = store.add(
            name,
            data,
            masks,
            align,
            description,
            actor="cli",
            replace=replace,
            allow_resize=allow_resize,
            where=str(golden),
        )
    except RecipeExists as error:
        raise RecipeExists(f"{error} (--replace)") from None
    except GoldenSizeMismatch as error:
        raise GoldenSizeMismatch(f"{error} (--allow-resize)") from None
    except RecipeError as error:  # the store names its fields; say them as options
        raise RecipeError(_OPTION.sub(lambda m: f"--{m.group(1).rstrip('s')}", str(error), count=1)) from None
    typer.echo(_json(recipe) if as_json else f"stored recipe {_line(recipe)}")


@app.command("list")
def list_cmd(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Every recipe: name, golden size and sha256, masks, alignment method, description."""
    recipes = open_recipes(config, data_dir).list()
    if as_json:
        typer.echo("[" + ",".join(_json(r) for r in recipes) + "]")
        return
    for r in recipes:
        typer.echo(_line(r))


@app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="Recipe name.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """One recipe in full, with where its golden image file is."""
    store = open_recipes(config, data_dir)
    r = store.get(name)
    if as_json:
        typer.echo(_json(r))
        return
    path = store.files.find(r.golden_sha256)
    typer.echo(
        f"recipe       {r.name}\ndescription  {r.description}\n"
        f"golden       {r.golden_sha256}  {r.width}x{r.height}  {path or 'FILE MISSING'}\n"
        f"align        {r.align.model_dump_json()}\n"
        f"created      {r.created_at:%Y-%m-%d %H:%M:%S} by {r.created_by or '-'}\n"
        f"updated      {r.updated_at:%Y-%m-%d %H:%M:%S} by {r.updated_by or '-'}"
    )
    for m in r.masks:
        typer.echo(f"mask         {m.x1},{m.y1},{m.x2},{m.y2}  {m.label}")


@app.command("import-deeppcb")
def import_deeppcb_cmd(
    src: Annotated[Path, typer.Argument(help="DeepPCB folder (holding PCBData, or PCBData itself).")],
    list_name: Annotated[
        str | None, typer.Option("--list", help="trainval or test (default: every list the folder has).")
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """One recipe per board, deeppcb-<board id>, golden = the board's template; repeating it is cheap."""
    from inspection.core.errors import DatasetError
    from inspection.ml.datasets.deeppcb import find_pcbdata
    from inspection.ml.datasets.deeppcb_recipes import register_deeppcb_recipes

    if list_name is not None and f"{list_name.removesuffix('.txt')}.txt" not in LISTS:
        raise RecipeError(f"--list {list_name!r}: must be trainval or test")
    try:
        pcb = find_pcbdata(src)
    except DatasetError as error:
        raise RecipeError(str(error)) from None
    names = [f"{list_name.removesuffix('.txt')}.txt"] if list_name else [n for n in LISTS if (pcb / n).is_file()]
    store = open_recipes(config, data_dir)
    for name in names:
        n = register_deeppcb_recipes(store, src, name, actor="cli")
        typer.echo(f"{pcb / name}: {n} recipes added or changed")
    typer.echo(f"{len(store.shas('deeppcb-'))} DeepPCB recipes in {store.files.root.parent}")
