# Helpers only (no rules): config validation, stage ids, shard plan, paths, params.
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from ddflow.config import (
    IPC_JOINT_KINDS,
    SHARDED_KINDS,
    StageIds,
    canonical_json,
    validate_config,
)
from ddflow.recover.delt import classes_per_batch
from ddflow.data.catalog import num_classes
from ddflow.recover.shards import plan_shards, shards_for_ipc

CFG = validate_config(config)
IDS = StageIds(CFG)
DS = CFG["dataset"]["name"]
NUM_CLASSES = num_classes(CFG["dataset"])
IPCS = sorted(CFG["ipc"])
METHODS = CFG["methods"]
SHARDED = [m for m in METHODS if METHODS[m]["kind"] in SHARDED_KINDS]
RANDOM = [m for m in METHODS if METHODS[m]["kind"] == "random"]
RDED = [m for m in METHODS if METHODS[m]["kind"] == "rded"]
RANKING = f"results/{DS}/ranking/teacher-{IDS.teacher}.npz"
STUDENT_SEEDS = CFG["student"]["seeds"]
SWEEPS = CFG["sweep_members"]
SNAPSHOTS = CFG["report"]["snapshots"]
VARIANT_OF = {m: (sweep, v) for sweep, members in SWEEPS.items() for m, v in members}

DATA_DIR = f"results/{DS}/data-{IDS.data}"
TEACHER_DIR = f"results/{DS}/teacher/{CFG['teacher']['arch']}-{IDS.teacher}"
DATA_NPZ = f"{DATA_DIR}/dataset.npz"
DATA_META = f"{DATA_DIR}/meta.json"
TEACHER_CKPT = f"{TEACHER_DIR}/teacher.pt"


wildcard_constraints:
    ds=DS,
    ipc=r"\d+",
    seed=r"\d+",
    mid=r"[0-9a-f]{10}",
    sid=r"[0-9a-f]{10}",
    shard=r"c\d{5}-\d{5}_i\d{4}-\d{4}",


def threads_for_job():
    return CFG["runtime"]["threads"]


def method_dir(method):
    return f"results/{DS}/recover/{method}-{IDS.method(method)}"


def distilled_dir(method, ipc):
    return f"results/{DS}/distilled/{method}-{IDS.method(method)}/ipc{ipc}"


def shard_plan(method, ipc=None):
    """Shards of a method; for IPC-joint kinds (DELT) those of one IPC value, all IPC in one."""
    m = METHODS[method]
    if m["kind"] in IPC_JOINT_KINDS:
        ipcs = IPCS if ipc is None else [ipc]
        return sorted(
            {
                s
                for n in ipcs
                for s in plan_shards(
                    NUM_CLASSES, n, classes_per_batch(m["batch_images"], n), n
                )
            }
        )
    return plan_shards(NUM_CLASSES, max(IPCS), m["batch_classes"], m["ipc_per_shard"])


def needs_ranking(method):
    return METHODS[method].get("init", "gaussian") != "gaussian"


def recovery_inputs(wildcards):
    check_method_id(wildcards)
    inputs = {"npz": DATA_NPZ, "meta": DATA_META, "teacher": TEACHER_CKPT}
    if needs_ranking(wildcards.method):
        inputs["ranking"] = RANKING
    return inputs


def check_method_id(wildcards):
    """A path whose id is not the current config's cannot be made from this config."""
    if wildcards.method not in METHODS:
        raise ValueError(
            f"unknown method '{wildcards.method}' (config: {list(METHODS)})"
        )
    expected = IDS.method(wildcards.method)
    if wildcards.mid != expected:
        raise ValueError(
            f"{wildcards.method}-{wildcards.mid} is not the current config's id ({expected})"
        )


def shard_inputs(wildcards):
    check_method_id(wildcards)
    ipc = int(wildcards.ipc)
    if METHODS[wildcards.method]["kind"] in IPC_JOINT_KINDS:
        shards = shard_plan(wildcards.method, ipc)
    else:
        shards = shards_for_ipc(shard_plan(wildcards.method), ipc)
    return [f"{method_dir(wildcards.method)}/shards/{s.name}.npz" for s in shards]


def method_json(wildcards):
    """Exactly this method's config (canonical, so reordered YAML keys change nothing)."""
    check_method_id(wildcards)
    return canonical_json(METHODS[wildcards.method])


def manifest_info(wildcards):
    check_method_id(wildcards)
    return canonical_json(
        {
            "dataset": DS,
            "method": wildcards.method,
            "method_id": wildcards.mid,
            "stage": IDS.method_slice(wildcards.method),
        }
    )


def student_json(wildcards):
    if wildcards.sid != IDS.student:
        raise ValueError(
            f"student-{wildcards.sid} is not the current config's ({IDS.student})"
        )
    return canonical_json({k: v for k, v in CFG["student"].items() if k != "seeds"})


def student_info(wildcards):
    check_method_id(wildcards)
    return canonical_json(
        {
            "dataset": DS,
            "method": wildcards.method,
            "kind": METHODS[wildcards.method]["kind"],
            "method_id": wildcards.mid,
            "student": CFG["student"]["arch"],
            "student_id": wildcards.sid,
            "sweep": VARIANT_OF.get(wildcards.method, (None, None))[0],
            "variant": VARIANT_OF.get(wildcards.method, (None, {}))[1],
        }
    )


def distilled_sets():
    return [(m, ipc) for m in METHODS for ipc in IPCS]


def student_results(methods=None):
    return [
        f"results/{DS}/students/{m}-{IDS.method(m)}/ipc{ipc}/student-{IDS.student}/seed{s}.json"
        for m in (METHODS if methods is None else methods)
        for ipc in IPCS
        for s in STUDENT_SEEDS
    ]


def sweep_results(wildcards):
    return student_results([m for m, _ in SWEEPS[wildcards.sweep]])


def baseline_results(wildcards):
    return student_results(RANDOM)


def snapshot_npzs():
    methods = SNAPSHOTS["methods"] if SNAPSHOTS else []
    return [f"results/{DS}/snapshots/{m}-{IDS.method(m)}.npz" for m in methods]


def snapshot_params(wildcards):
    check_method_id(wildcards)
    return canonical_json(
        {
            "method": METHODS[wildcards.method],
            "classes": SNAPSHOTS["classes"],
            "steps": SNAPSHOTS["steps"],
        }
    )


def diversity_results():
    return [
        f"results/{DS}/diversity/{m}-{IDS.method(m)}-ipc{ipc}.json"
        for m, ipc in distilled_sets()
    ]


def grid_images(wildcards):
    return f"{distilled_dir(wildcards.method, wildcards.ipc)}/images"


def grid_manifest(wildcards):
    return f"{distilled_dir(wildcards.method, wildcards.ipc)}/manifest.json"


def grid_figures():
    return [
        f"results/{DS}/figures/grid-{m}-ipc{ipc}.png" for m, ipc in distilled_sets()
    ]


def final_targets():
    return [
        f"results/{DS}/tables/summary.csv",
        f"results/{DS}/tables/summary.md",
        f"results/{DS}/figures/student_curves.png",
        f"results/{DS}/figures/crop_schedules.png",
        f"results/{DS}/tables/diversity.md",
        f"results/{DS}/figures/diversity.png",
        f"results/{DS}/tables/cost.md",
        *grid_figures(),
        *[f"results/{DS}/tables/sweep-{s}.md" for s in SWEEPS],
        *[f"results/{DS}/figures/sweep-{s}.png" for s in SWEEPS],
        *([f"results/{DS}/figures/snapshots.png"] if SNAPSHOTS else []),
    ]
