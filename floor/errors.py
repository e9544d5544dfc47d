"""The line integration's own exception root."""

from __future__ import annotations

from inspection.core.errors import InspectionError


class FloorError(InspectionError):
    """An output that cannot start or run as configured (one line: what and why)."""
