"""The vocabulary every room of inspection/ shares: errors, classes, detections, outcomes."""
