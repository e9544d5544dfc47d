"""``twinspect tokens create / list / revoke``: API tokens with roles, stored hashed in the data dir's database."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import ConfigOption, DataDirOption, settings_from
from api.tokens import Role, TokenStore

app = typer.Typer(help="API tokens (roles: camera, qa, ml, twin, admin).", no_args_is_help=True)


def open_tokens(config: ConfigOption, data_dir: DataDirOption) -> TokenStore:
    from inspection.store import open_database

    settings = settings_from(config, data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return TokenStore(open_database(settings.database_url))


@app.command("create")
def create_cmd(
    role: Annotated[Role, typer.Option(help="What the token may do.")],
    name: Annotated[str | None, typer.Option(help="Who or what holds it (default: the role).")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a token; it is printed once, alone on the last line (only its hash is stored)."""
    info, clear = open_tokens(config, data_dir).create(role, name or f"{role.value}-token")
    typer.echo(f"created token {info.id} ({info.name}, role {info.role.value}); keep it, it is not shown again:")
    typer.echo(clear)


@app.command("list")
def list_cmd(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Every token: id, role, name, created, revoked."""
    for t in open_tokens(config, data_dir).all():
        revoked = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        typer.echo(f"{t.id}  {t.role.value:6s}  {t.name}  created {t.created_at:%Y-%m-%d %H:%M}  {revoked}")


@app.command("revoke")
def revoke_cmd(
    token: Annotated[str, typer.Argument(help="Token id, or a name (revokes every active token of it).")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a token at once (requests with it get 401)."""
    ids = open_tokens(config, data_dir).revoke(token)
    typer.echo(f"revoked {', '.join(ids)}")
