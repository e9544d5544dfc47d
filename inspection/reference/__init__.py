"""Golden-reference inspection: recipes and golden images, alignment, differences, the three-plane model input."""
