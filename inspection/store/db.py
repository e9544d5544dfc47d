"""Open the inspection database and bring its schema to the version this code knows.

``open_database(url)`` takes any SQLAlchemy URL. The embedded default is an SQLite file
(``sqlite:///var/twinspect.db``), opened in WAL mode with ``synchronous=NORMAL`` (a
committed transaction survives a process crash; a power cut may lose the last few
commits but never corrupts the file), foreign keys on and a busy timeout, on every
pooled connection. PostgreSQL (``postgresql+psycopg://...``) runs the same code; put
``?options=-csearch_path%3Dmyschema`` in the URL to keep the tables in a schema.

Migrations (Alembic scripts in ``migrations/``, shipped inside the package) run to head
on every open, inside one transaction that holds the write lock (SQLite ``BEGIN
IMMEDIATE``, a PostgreSQL advisory lock), so processes opening the same database at once
migrate it exactly once. An up-to-date database is only read, not written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url

from inspection.store.errors import (
    NotADatabaseError,
    SchemaVersionError,
    StorageFullError,
    StoreError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "twinspect_sqlite_begin"  # execution option read by the SQLite "begin" hook
_PG_MIGRATION_LOCK = 0x7477_696E_7370  # advisory lock key: serialises migrations across processes


def write_bind(engine: Engine) -> Engine:
    """The same engine, but its transactions take SQLite's write lock at BEGIN.

    A deferred SQLite transaction that reads and then writes can fail with "database is
    locked" at once, without waiting, when another writer committed in between; taking
    the lock up front (``BEGIN IMMEDIATE``) makes writers queue on the busy timeout
    instead. On PostgreSQL the option is ignored.
    """
    return engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    """Pragmas on every new connection; SQLAlchemy (not sqlite3) emits BEGIN, so DDL is transactional."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver stops emitting BEGIN/COMMIT on its own
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, f"no migrations found in {MIGRATIONS}"
    return head


def _check_known(script: ScriptDirectory, current: tuple[str, ...], where: str) -> bool:
    """True when the database is at head; raises when it has a revision this code does not know."""
    for rev in current:
        try:
            script.get_revision(rev)
        except CommandError:
            raise SchemaVersionError(
                f"database {where} has schema revision {rev!r}, newer than this code knows "
                f"(head {script.get_current_head()!r}); upgrade twinspect or open another database"
            ) from None
    return set(current) == set(script.get_heads())


def _migrate(engine: Engine, where: str) -> None:
    cfg = _alembic_config()
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:  # the common case: already at head, a plain read, no write lock
        if _check_known(script, tuple(MigrationContext.configure(conn).get_current_heads()), where):
            return
    with write_bind(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        current = tuple(MigrationContext.configure(conn).get_current_heads())
        if _check_known(script, current, where):  # another process migrated while we waited
            return
        log.info("migrating %s from %s to head", where, current or "empty")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


_FULL_TEXT = ("database or disk is full", "no space left on device", "could not extend file", "disk quota exceeded")
_PG_DISK_FULL = "53100"  # PostgreSQL SQLSTATE disk_full


def is_full(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a write refused for lack of space."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, StorageFullError):
            return True
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(cause, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if any(text in str(cause).lower() for text in _FULL_TEXT):
            return True
        cause = getattr(cause, "orig", None) or cause.__cause__ or cause.__context__
    return False


def translate(error: exc.DBAPIError, url: URL | str | None, action: str = "use") -> StoreError:
    """A driver error as the store's exception tree, naming the database (password hidden) when known.

    Lack of space: StorageFullError; a file that is not (or no longer) an SQLite database:
    NotADatabaseError; other operational failures (locks, lost connections, I/O):
    StoreUnavailableError. Anything else (a constraint, a bad statement): StoreError.
    """
    sa_url = make_url(url) if isinstance(url, str) else url
    where = sa_url.render_as_string(hide_password=True) if sa_url is not None else "in use"
    orig = error.orig
    reason = str(orig).strip()
    if is_full(error):
        return StorageFullError(f"cannot {action} database {where}: no space left on its disk ({reason})")
    sqlite = sa_url.get_backend_name() == "sqlite" if sa_url is not None else isinstance(orig, sqlite3.Error)
    if sqlite:
        if type(orig) is sqlite3.DatabaseError:  # SQLITE_CORRUPT, SQLITE_NOTADB
            return NotADatabaseError(f"database {where} is not an SQLite database or is damaged: {orig}")
        if isinstance(orig, sqlite3.OperationalError):
            return StoreUnavailableError(f"cannot {action} SQLite database {where}: {orig}")
    if isinstance(error, exc.OperationalError | exc.InterfaceError) or error.connection_invalidated:
        return StoreUnavailableError(f"cannot {action} database {where}: {reason}")
    return StoreError(f"database {where} refused the write: {reason}")


def _translate(error: exc.DBAPIError, url: URL, where: str) -> StoreError:
    found = translate(error, url, "open")
    return (
        StoreUnavailableError(f"cannot open database {where}: {str(error.orig).strip()}")
        if type(found) is StoreError
        else found
    )


_OPEN_LOCK = threading.Lock()


@contextlib.contextmanager
def _sqlite_open_lock(url: URL) -> Iterator[None]:
    """Serialise first opens of one SQLite file across threads and processes.

    A brand-new file starts in rollback-journal mode; several connections switching it to
    WAL and migrating at once can meet SQLite's lock-upgrade deadlock, which returns
    "database is locked" at once instead of waiting on the busy timeout. A sidecar
    ``<file>-open.lock`` (``flock``; never the database file itself, whose POSIX locks a
    stray close would drop) makes the first opens take turns. Not needed on PostgreSQL.
    """
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + "-open.lock")
    with _OPEN_LOCK:  # flock does not exclude the threads of one process
        try:
            handle = open(lock_path, "a+b")  # noqa: SIM115 - closed below
        except OSError as error:  # a read-only folder: nobody can migrate there anyway
            log.debug("no open lock %s (%s); opening without it", lock_path, error)
            yield
            return
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield


def _prepare_sqlite_file(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    folder = Path(database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreUnavailableError(f"cannot create folder {folder} for database {database}: {error}") from error


def open_database(url: str | URL, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, echo: bool = False) -> Engine:
    """An engine on ``url`` whose schema is at head; the caller disposes of it."""
    try:
        sa_url = make_url(url)
    except exc.ArgumentError as error:
        raise StoreError(f"not a database URL: {url!r} ({error})") from None
    where = sa_url.render_as_string(hide_password=True)
    is_sqlite = sa_url.get_backend_name() == "sqlite"
    if is_sqlite:
        _prepare_sqlite_file(sa_url)
    try:
        engine = create_engine(sa_url, echo=echo, pool_pre_ping=not is_sqlite)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise StoreError(f"cannot use database URL {where}: {error}") from None
    if is_sqlite:
        _install_sqlite_hooks(engine, busy_timeout_ms)
    try:
        with _sqlite_open_lock(sa_url):
            _migrate(engine, where)
    except exc.DBAPIError as error:
        engine.dispose()
        raise _translate(error, sa_url, where) from error
    except BaseException:
        engine.dispose()
        raise
    return engine
