"""Running a detection model: ONNX Runtime (letterbox, NMS, graph rewrite), the Ultralytics backend,
model cards (the registry's read side), the inference worker."""
