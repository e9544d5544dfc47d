"""API: the FastAPI app, the web UI, the settings model and the ``twinspect`` CLI."""
