"""Post-processing and operations, run as ``python -m scripts.<name>``."""
