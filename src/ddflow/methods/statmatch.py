"""G-VBSM and EDC: multi-teacher statistics recovery (reference-frontier.md §1, §2).

Both match, for each teacher in turn, its BatchNorm running statistics and the statistics of its
convolution inputs from a pass over the training set (the `stats` stage), in the EMA form, per
device chunk; G-VBSM from Gaussian noise with its eigen-spectrum diversity term, EDC from real
images with per-class targets. They share a stage (recover/statmatch.py); the kinds differ only
in defaults, and presets carry each released script.
"""

from __future__ import annotations

from pathlib import Path

from ddflow.errors import ConfigError
from ddflow.methods.base import Inputs, MethodKind, SetStarts, register


def stats_spec(method: dict, teacher: str) -> dict:
    """What a teacher's statistics depend on for this method (its stage id's slice): the pass,
    or the shipped files it reads instead (by their content, in one job)."""
    folder = method["stats"]["files"].get(teacher)
    if folder:
        from ddflow.data.fingerprint import fingerprint

        return {"import": folder, "content": fingerprint(folder, {".npz"}),
                "patch": method["patch"], "shards": 1}  # fmt: skip
    spec = {k: v for k, v in method["stats"].items() if k != "files"}
    return {**spec, "patch": method["patch"], "per_class": method["class_weight"] > 0}


@register
class GVBSM(SetStarts, MethodKind):
    name = "gvbsm"
    schema = "statmatch_method"
    stage = "statmatch"
    version = 1
    code = ("recover/statmatch.py", "recover/terms.py", "recover/loop.py", "recover/augment.py",
            "recover/bn_loss.py", "methods/statmatch.py", "presets.py")  # fmt: skip
    sharded = True
    ipc_joint = True  # class-major global batches: each IPC value has its own shards
    reads = frozenset({"data", "teachers", "stats", "source"})
    # the start set's id and IPC enter through upstream (source), so ids without one hold
    id_excludes = frozenset({"stats", "shard_batches", "init_set", "init_ipc"})

    def reads_for(self, method):
        init = {"real": {"data"}, "set": {"source"}}.get(method["init"], set())
        return {"teachers", "stats"} | init

    def stats_passes(self, method):
        return [(n, stats_spec(method, n)) for n in method["teachers"]]

    def check(self, where, method):
        if method["batch_size"] % method["stat_group"]:
            raise ConfigError(
                f"config key '{where}.stat_group': {method['stat_group']} does not divide "
                f"batch_size {method['batch_size']}; give the images each of the authors' devices "
                "matched (batch_size / GPUs)"
            )
        if method["min_scale"] > method["max_scale"]:
            raise ConfigError(f"config key '{where}.min_scale': larger than max_scale")
        self.check_source(where, method)
        files = method["stats"]["files"]
        for name, folder in files.items():
            if name not in method["teachers"]:
                raise ConfigError(f"config key '{where}.stats.files.{name}': not one of the "
                                  f"method's teachers {method['teachers']}")  # fmt: skip
            if not Path(folder).is_dir():
                raise ConfigError(f"config key '{where}.stats.files.{name}': folder '{folder}' "
                                  "does not exist; give the folder of the <model class>=<module>"
                                  " folders that hold running.npz")  # fmt: skip
        if files and method["class_weight"] > 0:
            raise ConfigError(
                f"config key '{where}.stats.files': the shipped files hold global targets only, "
                "and class_weight > 0 needs per-class ones; remove stats.files (a pass computes "
                "both) or set class_weight: 0"
            )

    def upstream(self, ids, method):
        out = {"teachers": [ids.teachers[n] for n in method["teachers"]],
               "stats": [ids.stats(n, spec) for n, spec in self.stats_passes(method)]}  # fmt: skip
        return {**out, **self.source_upstream(ids, method)} if method["init"] == "set" else out

    def classes_per_shard(self, method, ipc):
        from ddflow.recover.statmatch import classes_per_shard

        return classes_per_shard(ipc, method["batch_size"], method["shard_batches"])

    def rehearsal(self, method, ipc, classes):
        """Two steps; global batches of half the classes over two devices, so a stand-in makes
        two shards and chunks whatever the class count its source fixes (CIFAR-100's 100 made
        75 shard jobs of eight teachers with a batch of 2 classes); a statistics pass of small
        batches."""
        group = ipc * -(-classes // 4)
        return {"iterations": 2, "batch_size": 2 * group, "stat_group": group,
                "stats": {**method.get("stats", {}), "batch_size": 8}}  # fmt: skip

    def recover(self, inputs: Inputs, method, shard, log_every, resume, pack):
        from ddflow.recover.init import read_set_classes
        from ddflow.recover.statmatch import real_starts, recover_statmatch_shard

        init = None
        if method["init"] == "real":
            b = inputs.bundle
            init = real_starts(b.train_x, b.train_y, shard, inputs.norm, inputs.stage_id,
                               method["seed"])  # fmt: skip
        elif method["init"] == "set":  # EDC ImageNet-1K: its mosaics, drawn as real images are
            x, y = read_set_classes(*inputs.source, shard.c0, shard.c1)
            init = real_starts(x, y, shard, inputs.norm, inputs.stage_id, method["seed"])
        return recover_statmatch_shard(
            inputs.teachers, inputs.stats, inputs.norm, inputs.chw, method, inputs.stage_id,
            shard, inputs.device, log_every, init,
        )  # fmt: skip


@register
class EDC(GVBSM):
    name = "edc"
    # the released recover.py: class targets at 0.5, real starts, RandomResizedCrop(0.5, 1) and
    # a flip, no roll; the spectrum flag is passed but unused and no script drops conv terms
    defaults = {
        "class_weight": 0.5, "init": "real", "dd_weight": 0.0, "drop_rate": 0.0, "crop": True,
        "min_scale": 0.5, "jitter": 0, "pad": 0, "iterations": 1000,
    }  # fmt: skip
