"""Inspection: datasets, models (train / eval / export / predict), metrics and detectors."""
