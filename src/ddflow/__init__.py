"""ddflow: reproducible squeeze-recover-relabel dataset distillation."""

__version__ = "0.1.0"
