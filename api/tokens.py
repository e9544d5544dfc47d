"""API tokens: who may call what. Stored as SHA-256 hashes; the clear token is shown once.

A token reads ``tsp_<id>_<secret>``: the id finds the row, the secret's hash must match
(compared in constant time). Roles:

- ``camera``: push frames;        - ``qa``: review inspections (and read them, stats, live view);
- ``ml``: models, dataset export;  - ``twin``: read the event feeds and twins;
- ``admin``: everything, and manage tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, Connection, Engine, String, Table, exc, select, update

from api.errors import NotFound, Unauthorized
from inspection.store.db import translate, write_bind
from inspection.store.models import Base, UTCDateTime, in_list


class Role(StrEnum):
    CAMERA = "camera"
    QA = "qa"
    ML = "ml"
    TWIN = "twin"
    ADMIN = "admin"


api_tokens = Table(
    "api_tokens",
    Base.metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    CheckConstraint(in_list("role", tuple(r.value for r in Role)), name="role"),
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, name and role."""

    token_id: str
    name: str
    role: Role


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Create, check, list and revoke API tokens in the twinspect database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write = write_bind(engine)

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[Connection]:
        """A connection (a transaction when writing); a database that fails says why (StorageFullError: 503)."""
        try:
            with self._write.begin() if write else self.engine.connect() as conn:
                yield conn
        except exc.DBAPIError as error:
            raise translate(error, self.engine.url, "write to" if write else "read") from error

    def create(self, role: Role | str, name: str) -> tuple[TokenInfo, str]:
        """A new token; returns its info and the clear token (shown once, never stored)."""
        try:
            role = Role(role)
        except ValueError:
            raise ValueError(f"role {role!r}: must be one of {', '.join(r.value for r in Role)}") from None
        if not name.strip() or len(name) > 200:
            raise ValueError("name: 1-200 characters")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        info = TokenInfo(token_id, name.strip(), role, datetime.now(UTC), None)
        with self._connect(write=True) as conn:
            conn.execute(
                api_tokens.insert().values(
                    id=token_id,
                    name=info.name,
                    role=role.value,
                    secret_sha256=_hash(secret),
                    created_at=info.created_at,
                )
            )
        return info, f"tsp_{token_id}_{secret}"

    def verify(self, token: str | None) -> Principal | None:
        """The principal of a valid, unrevoked token; None otherwise."""
        if not token or not token.startswith("tsp_"):
            return None
        token_id, _, secret = token[4:].partition("_")
        with self._connect() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_sha256, _hash(secret)):
            return None
        return Principal(row.id, row.name, Role(row.role))

    def all(self) -> list[TokenInfo]:
        with self._connect() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.created_at)).all()
        return [TokenInfo(r.id, r.name, Role(r.role), r.created_at, r.revoked_at) for r in rows]

    def revoke(self, id_or_name: str) -> list[str]:
        """Revoke the token with this id, or every active token with this name; returns the ids."""
        with self._connect(write=True) as conn:
            ids = list(
                conn.execute(
                    select(api_tokens.c.id).where(
                        ((api_tokens.c.id == id_or_name) | (api_tokens.c.name == id_or_name))
                        & api_tokens.c.revoked_at.is_(None)
                    )
                ).scalars()
            )
            if not ids:
                raise NotFound(f"no active token with id or name {id_or_name!r}")
            conn.execute(update(api_tokens).where(api_tokens.c.id.in_(ids)).values(revoked_at=datetime.now(UTC)))
        return ids


__all__ = ["Principal", "Role", "TokenInfo", "TokenStore", "Unauthorized", "api_tokens"]
