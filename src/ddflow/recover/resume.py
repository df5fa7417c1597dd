"""Resumable recovery shards: a killed job continues from its last save, with identical bytes.

A shard's state file (beside its output) holds the finished batches' images and, for the batch
in progress, the pixels, the Adam state, the augmentation RNG state and the step. Everything a
step depends on is in it, so a resumed run on the same device and thread count gives the same
bytes as an uninterrupted one. The file names its stage id and shard; a stale file is ignored.
Saving changes no result, so the interval is a runtime knob (runtime.checkpoint_every).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from ddflow import io

log = logging.getLogger(__name__)


def state_path(out_path: str | Path) -> Path:
    out = Path(out_path)
    return out.with_name(f".{out.name}.resume.pt")


class ShardResume:
    """Periodic saves of one shard's progress; `every = 0` turns saving off."""

    def __init__(self, path: str | Path, identity: str, every: int):
        self.path, self.identity, self.every = Path(path), identity, every
        self.done: dict[int, np.ndarray] = {}
        self.current: dict | None = None
        saved = self._read() if every and self.path.exists() else None
        if saved is not None:
            if saved["identity"] == identity:
                self.done = {int(k): v.numpy() for k, v in saved["done"].items()}
                self.current = saved["current"]
                step = self.current["step"] if self.current else 0
                log.info(
                    "resuming %s: %d batch(es) done, batch in progress at step %d",
                    identity,
                    len(self.done),
                    step,
                )
            else:
                log.warning(
                    "ignoring %s: saved for %s, not %s", self.path, saved["identity"], identity
                )

    def _read(self) -> dict | None:
        """The saved progress; an unreadable file (damaged, or objects weights_only refuses) is
        only lost time: it is set aside and the shard starts over."""
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(saved, dict) or "identity" not in saved:
                raise ValueError("not a ddflow resume state")
            if saved.get("sha256") != _checksum(saved):
                raise ValueError("its content does not match its checksum")
            return saved
        except Exception as e:
            log.warning("ignoring unreadable resume state %s (%s); starting over", self.path, e)
            self.path.unlink()
            return None

    def finished(self, key: int) -> np.ndarray | None:
        return self.done.get(key)

    def restore(
        self,
        key: int,
        x: torch.Tensor,
        opt: torch.optim.Optimizer,
        rngs: list[random.Random],
        scaler: torch.amp.GradScaler | None = None,
    ) -> int:
        """Load the saved progress of batch `key` into x, opt and rngs; return the step to start.

        A save of another packing (runtime.pack_batches changed) does not fit: start afresh."""
        state = self.current
        if state is None or state["key"] != key:
            return 0
        if list(state["x"].shape) != list(x.shape):
            log.warning("saved batch %d has another packing; recomputing it", key)
            return 0
        with torch.no_grad():
            x.copy_(state["x"].to(x.device))
        opt.load_state_dict(state["opt"])
        if scaler is not None and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        for rng, (version, internal, gauss) in zip(rngs, state["rngs"]):
            rng.setstate((version, tuple(internal), gauss))
        return state["step"]

    def due(self, step: int, total: int) -> bool:
        return bool(self.every) and step % self.every == 0 and step < total

    def save(
        self,
        key: int,
        step: int,
        x: torch.Tensor,
        opt: torch.optim.Optimizer,
        rngs: list[random.Random],
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        self.current = {
            "key": key,
            "step": step,
            "x": x.detach().cpu().clone(),
            "opt": _to_cpu(opt.state_dict()),
            "rngs": [list(rng.getstate()) for rng in rngs],
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
        }
        self._write()

    def finish(self, key: int, images: np.ndarray) -> None:
        self.done[key] = images
        self.current = None
        if self.every:
            self._write()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        blob = {
            "identity": self.identity,
            "done": {str(k): torch.from_numpy(v) for k, v in self.done.items()},
            "current": self.current,
        }
        blob["sha256"] = _checksum(blob)
        with io.atomic_path(self.path) as tmp:
            torch.save(blob, tmp)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _checksum(blob: dict) -> str:
    """Of every tensor a state holds (done images, pixels, Adam moments): a damaged but
    loadable file would otherwise resume from wrong numbers."""
    tensors = {}

    def walk(obj, key: str) -> None:
        if isinstance(obj, torch.Tensor):
            tensors[key] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{key}/{k}")
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                walk(v, f"{key}/{i}")

    walk({k: v for k, v in blob.items() if k != "sha256"}, "")
    return io.tensors_sha256(tensors)
