"""The outcome of one inspection: what the rules decide, the store keeps and a reviewer may correct."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNCERTAIN = "uncertain"
