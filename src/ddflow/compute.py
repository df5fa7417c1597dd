"""Where and how a job computes: device choice, threads, and the CPU allocator.

glibc serves blocks over 32 MB with fresh mmap pages, so on CPU every large activation of every
step page-faults anew; keeping large blocks on the heap cut a ConvNet recovery step by ~15% here.
It changes no result, so it is a runtime knob (runtime.cpu_heap_alloc).
"""

from __future__ import annotations

import ctypes
import logging
import platform

import torch

log = logging.getLogger(__name__)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_large_blocks_on_heap() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        from ddflow.config import ConfigError, cuda_missing

        raise ConfigError(cuda_missing())
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def configure(runtime: dict, threads: int | None = None) -> torch.device:
    """Apply a job's runtime knobs; `threads` is what the scheduler granted (rule threads)."""
    torch.set_num_threads(threads or runtime["threads"])
    device = resolve_device(runtime["device"])
    if device.type == "cpu" and runtime.get("cpu_heap_alloc", True):
        log.info("CPU allocator: large blocks on the heap: %s", keep_large_blocks_on_heap())
    return device
