"""Class names of the two models twinspect ships."""

from __future__ import annotations

# DeepPCB type ids 1..6, in order; the YOLO class id is type id - 1.
DEEPPCB_CLASSES: tuple[str, ...] = ("open", "short", "mousebite", "spur", "copper", "pin-hole")

# The part model finds whole boards in the overview frame.
PART_CLASSES: tuple[str, ...] = ("board",)
