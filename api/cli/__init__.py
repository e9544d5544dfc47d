"""The ``twinspect`` command line."""
