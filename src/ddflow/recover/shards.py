"""Shard plan: a shard is a block of classes x a block of IPC indices, fixed at parse time.

Class blocks are the class-balanced batches (one image per class per IPC index), so BN statistics
are matched over the same composition as SRe2L's script. Seeds come from (stage id, class block,
IPC index), so an image does not depend on how IPC indices are grouped into shards: raising IPC
only adds shards.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ddflow.methods import kind_of

_NAME = re.compile(r"^c(\d{5})-(\d{5})_i(\d{4})-(\d{4})$")


@dataclass(frozen=True, order=True)
class Shard:
    c0: int  # classes [c0, c1)
    c1: int
    i0: int  # IPC indices [i0, i1)
    i1: int

    @property
    def name(self) -> str:
        return f"c{self.c0:05d}-{self.c1:05d}_i{self.i0:04d}-{self.i1:04d}"

    @classmethod
    def parse(cls, name: str) -> Shard:
        m = _NAME.match(name)
        if not m:
            raise ValueError(f"not a shard name: '{name}'")
        return cls(*map(int, m.groups()))


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def plan_shards(num_classes: int, ipc: int, batch_classes: int, ipc_per_shard: int) -> list[Shard]:
    return [
        Shard(c0, c1, i0, i1)
        for c0, c1 in _blocks(num_classes, batch_classes)
        for i0, i1 in _blocks(ipc, ipc_per_shard)
    ]


def classes_per_batch(batch_images: int, ipc: int) -> int:
    """DELT's class-major batches: whole classes of `ipc` images, `batch_images` at most."""
    return max(1, batch_images // ipc)


def shards_for_ipc(shards: list[Shard], ipc: int) -> list[Shard]:
    """The shards an assembled set of `ipc` images per class reads from."""
    return [s for s in shards if s.i0 < ipc]


def batch_seed(stage_id: str, c0: int, ipc_index: int) -> int:
    digest = hashlib.sha256(f"{stage_id}/c{c0}/i{ipc_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def method_shards(method: dict, num_classes: int, ipcs: list[int], ipc: int | None = None):
    """A method's shards. Independent kinds: one plan up to the largest IPC (raising IPC adds
    shards). DELT (`batch_images`): class-major batches hold all of a class's images, so each
    IPC value has its own shards; `ipc` picks one value's."""
    kind = kind_of(method)
    if kind.ipc_joint:
        values = ipcs if ipc is None else [ipc]
        return sorted(
            {
                s
                for n in values
                for s in plan_shards(num_classes, n, kind.classes_per_shard(method, n), n)
            }
        )
    shards = plan_shards(num_classes, max(ipcs), method["batch_classes"], method["ipc_per_shard"])
    return shards if ipc is None else shards_for_ipc(shards, ipc)


def index_major(images: dict, shard: Shard, iterations: int) -> dict:
    """A shard's arrays from its images of each IPC index (class-major blocks, index-major)."""
    import numpy as np

    idx = range(shard.i0, shard.i1)
    n = shard.c1 - shard.c0
    return {
        "images": np.concatenate([images[i] for i in idx]),
        "labels": np.tile(np.arange(shard.c0, shard.c1), len(idx)),
        "ipc_index": np.repeat(np.asarray(idx), n),
        "iterations": np.full(len(idx) * n, iterations),
    }
