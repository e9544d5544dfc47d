"""Exception tree of the camera package (its own root: camera imports nothing of the rest of twinspect)."""

from __future__ import annotations


class CameraError(Exception):
    """Base of every camera error: a source cannot be opened, configured or read."""


class ImageError(CameraError):
    """An image file is missing, or its bytes are not an image within the limits (see camera.decode)."""


class FrameRejected(CameraError):
    """A pushed frame is not an image or is too large (mapped to 4xx by the API)."""


class UnknownCamera(CameraError):
    """No camera with this id (or it is not a push camera)."""
