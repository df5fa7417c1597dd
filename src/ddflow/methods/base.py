"""The interface every method kind implements, and the registry that holds them.

Declarations are read while Snakemake plans the DAG, which must not import torch: a kind's
module imports the library code that builds images inside the methods that run in a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ddflow.errors import ConfigError

KINDS: dict[str, MethodKind] = {}


@dataclass
class Inputs:
    """What a job has loaded for its kind (only what the kind reads; the rest stays None)."""

    stage_id: str
    norm: Any  # Normalizer on `device`
    device: Any
    chw: tuple[int, int, int]
    bundle: Any = None  # DatasetBundle
    teacher: Any = None  # eval-mode nn.Module on `device`
    scores: Any = None  # the ranking: each training image's true-class probability
    features: dict | None = None  # the teacher's cached features and scores
    teachers: list | None = None  # a multi-teacher kind's teachers, in turn order
    stats: list | None = None  # and each one's statistics (recover/stats.py)
    source: tuple[str, str] | None = None  # another method's set (images folder, manifest)


class MethodKind:
    name: ClassVar[str]
    schema: ClassVar[str]  # the config schema's $defs block that validates its keys
    stage: ClassVar[str]  # kinds sharing an algorithm share a stage: its version and code
    version: ClassVar[int]  # bumped when results change (new ids; old results never reused)
    code: ClassVar[tuple[str, ...]]  # modules under src/ddflow whose code computes the stage
    defaults: ClassVar[dict] = {}  # the kind's published setting, applied before schema defaults
    sharded: ClassVar[bool] = False  # recovered per shard and assembled; else one job per IPC
    ipc_joint: ClassVar[bool] = False  # batches hold all IPC images of a class
    reads: ClassVar[frozenset[str]] = frozenset({"data"})  # of data, teacher, ranking, features
    # keys left out of the method's id as written: layout only (how its jobs are cut), or
    # settings whose results enter the id through `upstream` (a statistics pass's own id, which
    # leaves out how that pass is split into jobs)
    id_excludes: ClassVar[frozenset[str]] = frozenset()

    def reads_for(self, method: dict) -> set[str]:
        """The inputs this method's jobs read (a setting can need fewer or more)."""
        return set(self.reads)

    def files(self, method: dict) -> dict[str, str]:
        """Files or folders of the user's that its jobs read (inputs: a newer one reruns)."""
        return {}

    def content(self, method: dict) -> dict | None:
        """The fingerprint of the user's folders it reads (a rule parameter, so a file changed
        inside one reruns the set; data/fingerprint.py); None when it reads none."""
        return None

    def steps(self, method: dict) -> int:
        """Optimisation steps of one image (runtime and cost estimates; 0: none)."""
        return method.get("iterations", 0)

    def stats_passes(self, method: dict) -> list[tuple[str, dict]]:
        """(teacher name, pass settings) of each teacher-statistics pass (the `stats` stage) its
        jobs read, in the order they take them."""
        return []

    def check_written(self, where: str, method: dict, block: dict) -> None:
        """Rules on the method as written, before its schema `block` (which could only call a key
        unknown): synthesis seeds need a kind that draws from a seed."""
        if "seeds" in method and "seed" not in block["properties"]:
            raise ConfigError(
                f"config key '{where}.seeds': kind {self.name} builds its set from the teacher "
                "without randomness, so every synthesis seed would give the same set; remove seeds"
            )

    def check(self, where: str, method: dict) -> None:
        """Rules across keys that the schema cannot say; raise ConfigError naming `where`."""

    def classes_per_shard(self, method: dict, ipc: int) -> int:
        """An `ipc_joint` kind's class block a shard (all IPC images of its classes)."""
        raise NotImplementedError(f"kind {self.name} plans shards by class and IPC blocks")

    def rehearsal(self, method: dict, ipc: int, classes: int) -> dict:
        """Keys a rehearsal (ddflow/rehearse.py) sets to cut this method's sizes to what runs in
        minutes on a CPU while keeping its structure, at stand-in IPC up to `ipc` over
        `classes` classes."""
        return {}

    def images_needed(self, method: dict, ipc: int) -> int:
        """Real training images a class this method reads at `ipc` at the least (a rehearsal's
        stand-in data holds as many)."""
        return 0

    def upstream(self, ids, method: dict) -> dict:
        """The upstream stage ids its images depend on (part of its own id)."""
        if "features" in self.reads:
            return {"features": ids.features}
        if "teacher" in self.reads:
            return {"teacher": ids.teacher}
        return {"data": ids.data}

    def build(self, inputs: Inputs, method: dict, ipc: int) -> tuple[Any, dict]:
        """A set-building kind's class-major uint8 images, `ipc` per class, and what its
        manifest records beside them (e.g. the real images' indices)."""
        raise NotImplementedError(f"kind {self.name} is recovered per shard")

    def recover(self, inputs: Inputs, method: dict, shard, log_every: int, resume, pack: int):
        """A sharded kind's shard: its images, labels, IPC indices and iterations."""
        raise NotImplementedError(f"kind {self.name} builds its set in one job")


def class_by_class(inputs: Inputs, title: str, make) -> Any:
    """A set built one class at a time from the class's uint8 training images: `make(c,
    images)` gives its normalized images, quantized here, class-major, with progress."""
    import numpy as np

    from ddflow.data.files import take
    from ddflow.progress import Tracker

    b = inputs.bundle
    tracker = Tracker(title, b.num_classes, "class")
    out = []
    for c in range(b.num_classes):
        out.append(inputs.norm.to_uint8(make(c, take(b.train_x, np.flatnonzero(b.train_y == c)))))
        tracker.update(c + 1)
    return np.concatenate(out)


class SetStarts:
    """A kind whose images can start from another method's set (`init: set`, `init_set`,
    `init_ipc`): that set is an input of its jobs and its id part of theirs."""

    def source(self, method: dict, ipcs: list[int], ipc: int | None = None):
        """(method name, IPC) of the set its starts come from: init_ipc, the IPC being
        recovered (`same`: EDC draws from the mosaics made for it), or the config's largest."""
        if method["init_ipc"] == "same":
            return method["init_set"], ipc if ipc is not None else "same"
        return method["init_set"], method["init_ipc"] or max(ipcs)

    def source_upstream(self, ids, method: dict) -> dict:
        name, ipc = self.source(method, ids.cfg["ipc"])
        methods = ids.cfg["methods"]
        if name not in methods or methods[name] is method:
            raise ConfigError(f"config key 'methods.*.init_set': '{name}' is not another method "
                              f"of this config (methods: {sorted(methods)})")  # fmt: skip
        return {"source": [ids.method(name), ipc]}

    @staticmethod
    def check_source(where: str, method: dict) -> None:
        if method["init"] == "set" and "init_set" not in method:
            raise ConfigError(f"config key '{where}.init_set': init set needs it (the name of "
                              "the method whose set starts the images)")  # fmt: skip


def register(kind: type[MethodKind]) -> type[MethodKind]:
    if kind.name in KINDS:
        raise ValueError(f"method kind '{kind.name}' registered twice")
    KINDS[kind.name] = kind()
    return kind


def kind_of(method: dict) -> MethodKind:
    return KINDS[method["kind"]]
