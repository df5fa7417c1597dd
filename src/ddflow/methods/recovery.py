"""SRe2L-family recovery: synthetic images optimised against the teacher, shard by shard.

sre2l and cda share the loop (CDA changes the crop-scale schedule); delt recovers class-major
batches in staggered EarlyLate rounds from real, mosaic or Gaussian starts.
"""

from __future__ import annotations

from pathlib import Path

from ddflow import io
from ddflow.errors import ConfigError
from ddflow.methods.base import Inputs, MethodKind, SetStarts, register

CODE = ("recover/augment.py", "recover/bn_loss.py", "recover/delt.py", "recover/early_late.py",
        "recover/init.py", "recover/loop.py", "recover/schedules.py", "recover/sre2l.py",
        "select/ranking.py", "select/coreset.py", "select/mosaic.py", "presets.py",
        "methods/recovery.py")  # fmt: skip


@register
class SRe2L(MethodKind):
    name = "sre2l"
    schema = "recover_method"
    stage = "recover"
    version = 1
    code = CODE
    sharded = True
    reads = frozenset({"data", "teacher", "ranking"})

    def reads_for(self, method):
        init = method.get("init", "gaussian")
        return (
            {"teacher"}
            | ({"data"} if init != "gaussian" else set())
            | ({"ranking"} if init == "real" else set())
        )

    def check(self, where, method):
        """A mosaic start needs DELT's class-major batches; the crop scales must be in order."""
        if method.get("init") == "mosaic" and not self.ipc_joint:
            raise ConfigError(
                f"config key '{where}.init': mosaic needs class-major batches; use kind delt "
                "(or init real/gaussian)"
            )
        if method["min_scale"] > method["max_scale"]:
            raise ConfigError(f"config key '{where}.min_scale': larger than max_scale")

    def upstream(self, ids, method):
        ranked = {"ranker": ids.ranker} if ids.ranker and method.get("init") == "real" else {}
        return {"teacher": ids.teacher, **ranked}

    def rehearsal(self, method, ipc, classes):
        """Two steps; two class blocks and one IPC index a shard (several shards, few jobs)."""
        return {"iterations": 2, "batch_classes": -(-classes // 2), "ipc_per_shard": 1}

    def initializer(self, inputs: Inputs, method: dict):
        """(c0, c1, ipc_index) -> normalized images of a class-balanced batch; None = Gaussian."""
        from ddflow.recover.init import real_init

        if method["init"] == "gaussian":
            return None
        if method["init"] != "real":
            raise ValueError(
                f"init '{method['init']}' needs DELT's class-major batches; the per-IPC-index "
                "loop (kinds sre2l/cda, and snapshots) starts from real or gaussian images"
            )

        def init(c0: int, c1: int, ipc_index: int):
            x = real_init(
                inputs.bundle.train_x,
                inputs.bundle.train_y,
                inputs.scores,
                range(c0, c1),
                ipc_index + 1,
                method["selection"],
                inputs.norm,
            )
            return x.view(c1 - c0, ipc_index + 1, *x.shape[1:])[:, ipc_index]

        return init

    def recover(self, inputs, method, shard, log_every, resume, pack):
        from ddflow.recover.sre2l import recover_shard

        return recover_shard(
            inputs.teacher,
            inputs.norm,
            inputs.chw,
            method,
            inputs.stage_id,
            shard,
            inputs.device,
            log_every,
            self.initializer(inputs, method),
            resume,
            pack,
        )


@register
class CDA(SRe2L):
    name = "cda"
    defaults = {"crop_schedule": "cosine", "milestone": 1.0}


@register
class DELT(SRe2L):
    name = "delt"
    # DELT's released ImageNet-1K scripts: CDA schedule, medium-ranked real init, no jitter.
    defaults = {"crop_schedule": "cosine", "milestone": 1.0, "init": "real", "jitter": 0}
    ipc_joint = True

    def classes_per_shard(self, method, ipc):
        """DELT's class-major batches: whole classes of `ipc` images, `batch_images` at most."""
        from ddflow.recover.shards import classes_per_batch

        return classes_per_batch(method["batch_images"], ipc)

    def rehearsal(self, method, ipc, classes):
        """Two EarlyLate rounds of one step (IPC 2 keeps them: IPC 1 has no rounds), class-major
        batches of half the classes, mosaic starts from as few candidates as their cells need."""
        cells = ipc * method.get("mosaic_factor", 1) ** 2
        return {"iterations": 2, "round_iterations": 1, "batch_images": -(-classes // 2) * ipc,
                "mosaic_candidates": cells, "mosaic_crops": 2}  # fmt: skip

    def images_needed(self, method, ipc):
        """A mosaic start takes each of its cells from a different real image."""
        return ipc * method.get("mosaic_factor", 1) ** 2 if method.get("init") == "mosaic" else 0

    def recover(self, inputs, method, shard, log_every, resume, pack):
        from ddflow.recover.delt import recover_delt_shard
        from ddflow.recover.init import gaussian_init, mosaic_init, real_init
        from ddflow.recover.shards import batch_seed

        b = inputs.bundle
        classes, ipc = range(shard.c0, shard.c1), shard.i1 - shard.i0
        seed = batch_seed(inputs.stage_id, shard.c0, 0) ^ method["seed"]
        if method["init"] == "real":
            init = real_init(
                b.train_x, b.train_y, inputs.scores, classes, ipc, method["selection"], inputs.norm
            )
        elif method["init"] == "mosaic":
            init = mosaic_init(
                inputs.teacher, b.train_x, b.train_y, classes, ipc, method, inputs.norm, seed
            )
        else:
            init = gaussian_init(len(classes) * ipc, inputs.chw, seed)
        return recover_delt_shard(
            inputs.teacher, inputs.norm, init, method, inputs.stage_id, shard, inputs.device,
            log_every, resume,
        )  # fmt: skip


@register
class LPLD(DELT):
    """One batch a class matched to its class-aware BatchNorm statistics (recover/lpld.py)."""

    name = "lpld"
    schema = "lpld_method"
    stage = "lpld"
    version = 1
    code = (*CODE, "recover/lpld.py", "recover/stats.py")
    defaults = {}
    reads = frozenset({"teacher", "stats"})
    id_excludes = frozenset({"stats"})

    def reads_for(self, method):
        return set(self.reads)

    def stats_passes(self, method):
        """The teacher's class-aware BatchNorm pass: its loader's augmentation, batch, seed and
        momentum are in the stage id, the jobs it is split into are not."""
        spec = {k: v for k, v in method["stats"].items() if k != "momentum"}
        return [("teacher", {**spec, "class_bn": method["stats"]["momentum"]})]

    def upstream(self, ids, method):
        return {"teacher": ids.teacher,
                "stats": [ids.stats(n, spec) for n, spec in self.stats_passes(method)]}  # fmt: skip

    def classes_per_shard(self, method, ipc):
        return 1

    def rehearsal(self, method, ipc, classes):
        """Two steps; a statistics pass of small batches."""
        return {"iterations": 2, "stats": {**method.get("stats", {}), "batch_size": 8}}

    def recover(self, inputs, method, shard, log_every, resume, pack):
        from ddflow.recover.lpld import recover_lpld_shard

        return recover_lpld_shard(
            inputs.teacher, inputs.stats[0], inputs.norm, inputs.chw, method, inputs.stage_id,
            shard, inputs.device, log_every, resume,
        )  # fmt: skip


@register
class CVDD(SRe2L):
    """Committee voting (recover/committee.py): two teachers weighted by their priors each step."""

    name = "cvdd"
    schema = "cvdd_method"
    stage = "cvdd"
    version = 1
    code = (*CODE, "recover/committee.py", "recover/by_index.py")
    ipc_joint = True  # an index's committee depends on the set's IPC
    reads = frozenset({"data", "teachers", "ranking"})

    def reads_for(self, method):
        return {"teachers"} | ({"data", "ranking"} if method["init"] == "real" else set())

    def check(self, where, method):
        super().check(where, method)
        names = method["teachers"]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ConfigError(f"config key '{where}.teachers': a committee needs two or more "
                              "distinct teachers")  # fmt: skip
        if "priors" not in method:
            raise ConfigError(f"config key '{where}.priors': missing; give each teacher's prior "
                              "(its single-model accuracy), or a cvdd preset")  # fmt: skip
        if len(method["priors"]) != len(names):
            raise ConfigError(
                f"config key '{where}.priors': {len(method['priors'])} priors for "
                f"{len(names)} teachers; give one prior (its single-model accuracy) a teacher"
            )
        pair = method.get("ipc1_pair")
        if pair and (len(set(pair)) != 2 or max(pair) >= len(names)):
            raise ConfigError(f"config key '{where}.ipc1_pair': two distinct positions in "
                              f"{where}.teachers (0 to {len(names) - 1})")  # fmt: skip

    def upstream(self, ids, method):
        ranked = super().upstream(ids, method) if method["init"] == "real" else {}
        return {"teachers": [ids.teachers[n] for n in method["teachers"]], **ranked}

    def classes_per_shard(self, method, ipc):
        return method["batch_classes"]

    def rehearsal(self, method, ipc, classes):
        """Two steps; two class blocks (several shards, few jobs)."""
        return {"iterations": 2, "batch_classes": -(-classes // 2)}

    def recover(self, inputs, method, shard, log_every, resume, pack):
        from ddflow.recover.committee import recover_committee_shard

        return recover_committee_shard(
            inputs.teachers, inputs.norm, inputs.chw, method, inputs.stage_id, shard,
            shard.i1 - shard.i0, inputs.device, log_every, self.initializer(inputs, method),
            resume,
        )  # fmt: skip


@register
class FADRM(SetStarts, SRe2L):
    """Data-residual recovery in stages (recover/fadrm.py); FADRM+ lists several teachers."""

    name = "fadrm"
    schema = "fadrm_method"
    stage = "fadrm"
    version = 1
    code = (*CODE, "recover/fadrm.py", "recover/by_index.py", "methods/external.py", "distilled.py")
    reads = frozenset({"data", "teachers", "ranking", "source"})

    def reads_for(self, method):
        init = method["init"]
        return ({"teachers"} | ({"data"} if init in ("real", "folder") else set())
                | ({"ranking"} if init == "real" else set())
                | ({"source"} if init == "set" else set()))  # fmt: skip

    def check(self, where, method):
        super().check(where, method)
        sizes, budgets = method["stage_sizes"], method["stage_iterations"]
        if len(sizes) != len(budgets):
            raise ConfigError(f"config key '{where}.stage_iterations': {len(budgets)} budgets for "
                              f"{len(sizes)} stage_sizes; give one a stage")  # fmt: skip
        self.check_source(where, method)
        if method["init"] == "folder" and "init_folder" not in method:
            raise ConfigError(f"config key '{where}.init_folder': init folder needs it")
        if method["init"] == "folder" and not Path(method["init_folder"]).is_dir():
            raise ConfigError(
                f"config key '{where}.init_folder': folder '{method['init_folder']}' does not "
                "exist; set it to the patch folder (<class folder>/<image>, image i of a class "
                "for IPC index i)"
            )

    def files(self, method):
        return {"init_folder": method["init_folder"]} if method["init"] == "folder" else {}

    def content(self, method):
        if method["init"] != "folder":
            return None
        from ddflow.data.datasets import IMAGE_EXTS
        from ddflow.data.fingerprint import fingerprint

        return fingerprint(method["init_folder"], IMAGE_EXTS)

    def steps(self, method):
        return sum(method["stage_iterations"])

    def upstream(self, ids, method):
        teachers = {"teachers": [ids.teachers[n] for n in method["teachers"]]}
        if method["init"] == "real":  # the ranking's teacher (or ranker) too
            return {**teachers, **super().upstream(ids, method)}
        if method["init"] != "set":
            return teachers
        return {**teachers, **self.source_upstream(ids, method)}

    def rehearsal(self, method, ipc, classes):
        """Every stage at its size, one step each; two class blocks, one IPC index a shard."""
        steps = [1] * len(method.get("stage_sizes", [200, 224, 200, 224]))
        return {"stage_iterations": steps, "batch_classes": -(-classes // 2), "ipc_per_shard": 1}

    def initializer(self, inputs, method):
        from ddflow.recover.init import folder_init, set_init

        k = method["init_offset"]
        if method["init"] == "folder":
            b = inputs.bundle
            return lambda c0, c1, i: folder_init(
                method["init_folder"], method["init_class_folders"], b.classes, c0, c1, i + k,
                inputs.chw, inputs.norm,
            )  # fmt: skip
        if method["init"] == "set":
            classes = io.read_json(inputs.source[1])["classes"]
            return lambda c0, c1, i: set_init(*inputs.source, classes, c0, c1, i + k, inputs.norm)
        return super().initializer(inputs, method)

    def recover(self, inputs, method, shard, log_every, resume, pack):
        from ddflow.recover.fadrm import recover_fadrm_shard

        return recover_fadrm_shard(
            inputs.teachers, inputs.norm, inputs.chw, method, inputs.stage_id, shard,
            inputs.device, log_every, self.initializer(inputs, method), resume,
        )  # fmt: skip
