"""Storage of inspections: SQLite (WAL) or PostgreSQL through SQLAlchemy, evidence JPEGs on disk.

    engine = open_database("sqlite:///var/twinspect.db")   # migrates to head
    store = InspectionStore(engine, EvidenceStore("var/evidence"))
    rec = InspectionRecord.from_verdict(verdict, line_id=..., model_name=..., model_version=...,
                                        captured_at=..., evidence=store.evidence)
    store.save_many([rec, ...])                            # one transaction
"""

from inspection.store.db import head_revision, open_database
from inspection.store.errors import (
    DuplicateInspectionError,
    EvidenceError,
    EvidenceNotFoundError,
    InspectionNotFoundError,
    InvalidCursorError,
    NotADatabaseError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from inspection.store.evidence import EvidenceStore, encode_jpeg
from inspection.store.records import (
    BoxRecord,
    BoxSource,
    InspectionFilter,
    InspectionRecord,
    Page,
    ReviewStatus,
    StoredInspection,
)
from inspection.store.repository import InspectionStore

__all__ = [
    "BoxRecord", "BoxSource", "DuplicateInspectionError", "EvidenceError", "EvidenceNotFoundError",
    "EvidenceStore", "InspectionFilter", "InspectionNotFoundError", "InspectionRecord", "InspectionStore",
    "InvalidCursorError", "NotADatabaseError", "Page", "ReviewStatus", "SchemaVersionError", "StoreError",
    "StoreUnavailableError", "StoredInspection", "encode_jpeg", "head_revision", "open_database",
]
