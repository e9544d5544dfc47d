"""Exception tree of the inspection store (database and evidence files).

Every error names the database URL (password hidden), file or id at fault, in one line.
"""

from __future__ import annotations

from inspection.core.errors import InspectionError


class StoreError(InspectionError):
    """Base of every error raised by inspection.store."""


class StoreUnavailableError(StoreError):
    """The database server cannot be reached or refused the connection, or a write failed for now.

    Transient: the same write may succeed later (writers retry it; the API answers 503).
    """


class StorageFullError(StoreUnavailableError):
    """A write failed for lack of space (disk or database full); nothing was written. Retry when space returns."""


class Backlogged(StoreUnavailableError):
    """A writer's queue is full, so a write was not taken; try again later."""


class NotADatabaseError(StoreError):
    """The database file exists but is not an SQLite database (or is damaged)."""


class SchemaVersionError(StoreError):
    """The database schema is newer than this code, or a migration failed."""


class DuplicateInspectionError(StoreError):
    """An inspection with the same id or part_id is already stored."""


class InspectionNotFoundError(StoreError):
    """No inspection has the id asked for."""


class InvalidCursorError(StoreError):
    """A pagination cursor is malformed (not one this store handed out)."""


class EvidenceError(StoreError):
    """An evidence image cannot be encoded, written, or read back intact."""


class EvidenceNotFoundError(EvidenceError):
    """No evidence file has the sha256 asked for."""


class EvidenceWriteError(EvidenceError, StoreUnavailableError):
    """An evidence file could not be written (the folder or disk refused it); retrying may succeed."""


class EvidenceFullError(EvidenceWriteError, StorageFullError):
    """An evidence file could not be written for lack of space."""
