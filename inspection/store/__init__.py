"""Storage of inspections: SQLite (WAL) or PostgreSQL through SQLAlchemy, evidence JPEGs on disk.

engine = open_database("sqlite:///var/twinspect.db")   # migrates to head
store = InspectionStore(engine, EvidenceStore("var/evidence"))
store.save_many([record, ...])                         # InspectionRecords, one transaction

It knows nothing of the pipeline or its verdicts (inspection/pipeline/verdict.py turns a
verdict into an ``InspectionRecord``). Its database also holds the event log's and the API
tokens' tables: one migration history for the whole data dir.
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
from inspection.store.model_states import Change, ModelStates, PromotionBusy, Version
from inspection.store.records import (
    AuditEntry,
    BoxRecord,
    BoxSource,
    InspectionFilter,
    InspectionRecord,
    Page,
    ReviewStatus,
    SortOrder,
    StoredInspection,
)
from inspection.store.repository import InspectionStore
from inspection.store.reviews import AuditDraft, ConcurrentUpdate, ReviewChange
from inspection.store.stats import Bucket, Stats, StatsRangeError, TrendPoint

__all__ = [
    "AuditDraft",
    "AuditEntry",
    "BoxRecord",
    "BoxSource",
    "Bucket",
    "Change",
    "ConcurrentUpdate",
    "DuplicateInspectionError",
    "EvidenceError",
    "EvidenceNotFoundError",
    "EvidenceStore",
    "InspectionFilter",
    "InspectionNotFoundError",
    "InspectionRecord",
    "InspectionStore",
    "InvalidCursorError",
    "ModelStates",
    "NotADatabaseError",
    "Page",
    "PromotionBusy",
    "ReviewChange",
    "ReviewStatus",
    "SchemaVersionError",
    "SortOrder",
    "Stats",
    "StatsRangeError",
    "StoreError",
    "StoreUnavailableError",
    "StoredInspection",
    "TrendPoint",
    "Version",
    "encode_jpeg",
    "head_revision",
    "open_database",
]
