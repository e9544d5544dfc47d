"""The outcome of one inspection: what the rules decide, the store keeps and a reviewer may correct."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNCERTAIN = "uncertain"


def is_correction(model: Outcome, final: Outcome) -> bool:
    """The one definition of a correction: the final verdict (after review) differs from the model's.

    A reviewer who resolves an ``uncertain`` board corrects it (the model could not decide); one who
    confirms a ``fail`` does not; one who undoes or reopens a rejection takes the correction back.
    The store (``inspections.corrected``, stats), the ``review.corrected`` event and so the twin all
    count what this function says, computed once per review in ``inspection.qa.review``.
    """
    return Outcome(final) != Outcome(model)
