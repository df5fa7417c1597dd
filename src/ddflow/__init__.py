"""ddflow: reproducible squeeze-recover-relabel dataset distillation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ddflow")
except PackageNotFoundError:  # run from a source tree without installing
    __version__ = "0.1.0"
