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


# What one inference pass may take for activations: a quarter of the device's free memory, or
# this much host memory on a CPU; and a cap on images a forward (a bigger batch gains nothing).
CPU_INFERENCE_BUDGET = 2 << 30
INFERENCE_CAP = 512


def activation_bytes(model: torch.nn.Module, chw: tuple[int, ...]) -> int:
    """Bytes of every module's output in a no-grad forward of one image: more than is ever live
    at once, so a batch sized by it fits. Counted once per model and input size, on the meta
    device (no memory, no compute)."""
    key = ("_ddflow_activation_bytes", tuple(chw))
    cached = getattr(model, "_ddflow_cache", {})
    if key not in cached:
        total = [0]

        def count(module, inp, out):
            for t in out if isinstance(out, tuple | list) else [out]:
                # an in-place module (ReLU) hands back its input: no new memory
                if isinstance(t, torch.Tensor) and not any(t is i for i in inp):
                    total[0] += t.numel() * t.element_size()

        hooks = [m.register_forward_hook(count) for m in model.modules()]
        was_training = model.training
        # shapes only: the forward runs on the meta device (its weights stand in as meta tensors)
        meta = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict().items()}
        try:
            with torch.no_grad():
                model.eval()
                try:
                    x = torch.zeros(1, *chw, device="meta")
                    torch.func.functional_call(model, meta, (x,))
                except (NotImplementedError, RuntimeError):  # an op without a meta kernel
                    total[0] = 0
                    device = next(model.parameters()).device
                    model(torch.zeros(1, *chw, device=device))
        finally:
            model.train(was_training)
            for h in hooks:
                h.remove()
        cached[key] = total[0]
        model._ddflow_cache = cached
    return cached[key]


def inference_batch(model: torch.nn.Module, chw: tuple[int, ...], device) -> int:
    """Images a forward of a teacher pass takes (RDED's scoring, ranking, features, diversity,
    evaluation), sized for the device: its activation budget over one image's activations, as
    a power of two (the same chunks on alike devices), 1 to INFERENCE_CAP."""
    device = torch.device(device)
    if device.type == "cuda":
        budget = torch.cuda.mem_get_info(device)[0] // 4
    else:
        budget = CPU_INFERENCE_BUDGET
    fits = max(1, budget // max(1, activation_bytes(model, chw)))
    return min(INFERENCE_CAP, 1 << (int(fits).bit_length() - 1))


# Operators that only make a view or allocate, or are no-ops: no kernel runs for them.
METADATA_OPS = {
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::view", "aten::_unsafe_view",
    "aten::as_strided", "aten::reshape", "aten::expand", "aten::t", "aten::transpose",
    "aten::permute", "aten::unsqueeze", "aten::squeeze", "aten::select", "aten::slice",
    "aten::alias", "aten::detach", "aten::detach_", "aten::resolve_conj", "aten::resolve_neg",
    "aten::lift_fresh", "aten::unbind", "aten::split", "aten::chunk", "aten::narrow",
    "aten::expand_as", "aten::view_as", "aten::result_type", "aten::to", "aten::contiguous",
    "aten::resize_", "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense",
}  # fmt: skip


def operator_calls(fn) -> int:
    """How many operators `fn()` calls: aten calls made from Python or the autograd engine (not
    from inside another aten call), views, allocations and no-ops excluded. On a GPU each is at
    least one kernel launch, so a step whose count grows with the batch is launch-bound there.
    Counted with the torch profiler on CPU; the count does not depend on the device."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if _counted(e))


def _counted(event) -> bool:
    """An aten call that computes, not made from inside another one (views and casts that only
    wrap a computing call, like `to` around `_to_copy`, are looked through)."""
    if not event.name.startswith("aten::") or event.name in METADATA_OPS:
        return False
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::") and parent.name not in METADATA_OPS:
            return False
        parent = parent.cpu_parent
    return True
