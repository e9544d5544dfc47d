"""``twinspect config``: check a configuration file, show the effective configuration with each field's meaning."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from pydantic import BaseModel

    from api.settings import Settings

app = typer.Typer(help="Check and show configuration.", no_args_is_help=True)


def missing_files(settings: Settings, source: str) -> list[str]:
    """One line per configured path that does not lead where it must: the models' weights."""
    from api.settings import env_override
    from inspection.core.errors import ModelError
    from inspection.inference.cards import resolve_model_dir

    problems = []
    for role in ("defect", "part"):
        weights = Path(getattr(settings.models, role).weights)
        loc = ("models", role, "weights")
        var = env_override(loc)
        where = f"environment {var}" if var else source
        if not weights.exists():
            problems.append(f"{where}: {'.'.join(loc)}: {weights}: no such model folder or weights file")
            continue
        if weights.is_file() and weights.suffix in (".onnx", ".pt"):
            continue
        try:
            resolve_model_dir(weights)
        except ModelError as error:
            problems.append(f"{where}: {'.'.join(loc)}: {error}")
    return problems


@app.command("check")
def check_cmd(file: Annotated[Path, typer.Argument(help="twinspect.yaml to check.")]) -> None:
    """Validate a config file: every bad field by its dotted path, and weights that do not exist."""
    from api.settings import ConfigError, load_settings

    settings = load_settings(file)
    problems = missing_files(settings, str(file))
    if problems:
        raise ConfigError("\n".join(problems))
    typer.echo(f"{file}: OK (data_dir {settings.data_dir})")


def _scalar(value: Any) -> str:
    import yaml

    return str(yaml.safe_dump(value, default_flow_style=True, width=10_000)).strip().removesuffix("...").strip()


def annotated_yaml(model: BaseModel, indent: int = 0) -> list[str]:
    """YAML of a settings model, each field preceded by its description as a comment."""
    import yaml
    from pydantic import BaseModel

    pad = " " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if field.description:
            lines.append(f"{pad}# {field.description}")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines += annotated_yaml(value, indent + 2)
            continue
        plain = model.model_dump(mode="json", include={name})[name]
        if isinstance(plain, dict | list) and plain:
            lines.append(f"{pad}{name}:")
            text = yaml.safe_dump(plain, sort_keys=False, default_flow_style=False)
            lines += [f"{pad}  {ln}" for ln in text.rstrip("\n").split("\n")]
        else:
            lines.append(f"{pad}{name}: {_scalar(plain)}")
    return lines


@app.command("show")
def show_cmd(file: Annotated[Path | None, typer.Argument(help="twinspect.yaml (optional).")] = None) -> None:
    """Print the effective configuration (file + environment + defaults) as YAML, each field with its description."""
    from api.settings import load_settings

    typer.echo("\n".join(annotated_yaml(load_settings(file))))
