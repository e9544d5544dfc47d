"""The ML toolchain: datasets, training, evaluation, export, quantization, the model registry's publish side."""
