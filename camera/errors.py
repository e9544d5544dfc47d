"""Exception tree of the camera package."""

from __future__ import annotations

from inspection.errors import InspectionError


class CameraError(InspectionError):
    """A camera source cannot be opened, configured or read."""


class FrameRejected(CameraError):
    """A pushed frame is not an image or is too large (mapped to 4xx by the API)."""


class UnknownCamera(CameraError):
    """No camera with this id (or it is not a push camera)."""
