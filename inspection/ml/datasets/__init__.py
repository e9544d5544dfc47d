"""Dataset importers and the YOLO dataset layout twinspect trains on."""
