"""Exception tree of the inspection package.

Every error a user can cause carries a one-line message that names the file or the
field at fault; the CLI prints it and exits with code 2, the API maps it to a 4xx.
"""

from __future__ import annotations


class InspectionError(Exception):
    """Base of every error raised by the inspection package."""


class DatasetError(InspectionError):
    """A dataset is missing, malformed or does not match what was asked for."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        tail = "\n".join(f"  {p}" for p in shown)
        if more:
            tail += f"\n  ... and {more} more"
        return f"{head}\n{tail}"


class ModelError(InspectionError):
    """A weights file is missing, not a model, or does not fit the data or config."""


class TrackingError(InspectionError):
    """A tracker was used out of order (e.g. time went backwards)."""


class RulesError(InspectionError):
    """The rules do not fit the defect model (e.g. a threshold for a class it does not have)."""


class PartsError(InspectionError):
    """Part bookkeeping was fed frames it cannot belong to (another camera, time going back)."""
