# Helpers only (no rules): config validation, stage ids, shard plan, paths, params.
import json
import os
import sys
from pathlib import Path

# An alias of report(): outside rules, a line may not begin with that keyword.
from snakemake.io import report as in_report

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from ddflow.config import (
    VIEW_KEYS,
    StageIds,
    base_method,
    batch_size_for,
    application_methods,
    incremental_recipe,
    canonical_json,
    ConfigError,
    cuda_missing,
    experiment_record,
    load_yaml,
    paper_table_names,
    report_dir,
    student_result_keys,
    teacher_is_loaded,
    teacher_result_keys,
    validate_config,
)
from ddflow.checks import check_experiment
from ddflow.data.catalog import content as data_content
from ddflow.data.fingerprint import content_param
from ddflow.labels.budget import LabelBudget, batches_per_epoch, ranges_with_kept
from ddflow.labels.protocols import PROTOCOLS
from ddflow.methods import kind_of
from ddflow.recover.shards import Shard, method_shards
from ddflow.report.paper_figures import figure_for, file_stem
from ddflow.resources import (
    data_mem_mb,
    distilled_mem_mb,
    recover_runtime_min,
    train_images,
    training_runtime_min,
)

for path in workflow.configfiles:  # Snakemake's YAML keeps a repeated key silently
    load_yaml(path)
CFG = validate_config(config)
NUM_CLASSES = check_experiment(CFG)  # what `ddflow check` and ddflow.api apply too
IDS = StageIds(CFG)
DS = CFG["dataset"]["name"]
IPCS = sorted(CFG["ipc"])
METHODS = CFG["methods"]
SHARDED = [m for m in METHODS if kind_of(METHODS[m]).sharded]
SELECTED = [m for m in METHODS if not kind_of(METHODS[m]).sharded]  # one job per IPC
RANDOM = [
    m for m in METHODS if METHODS[m]["kind"] == "random"
]  # the baseline tables compare to
RANKING = f"results/{DS}/ranking/{IDS.ranking_name()}.npz"
FEATURES = f"results/{DS}/features/teacher-{IDS.teacher}-{IDS.features}.npz"
STUDENT_SEEDS = CFG["student"]["seeds"]
STORED_LABELS = "stored" in CFG["student"]["labels"]
STORED_BUDGETS = CFG["student"]["label_budget"] if STORED_LABELS else []
SWEEPS = CFG["sweep_members"]
SNAPSHOTS = CFG["report"]["snapshots"]
REPORT_NAME = CFG["report"]["name"]
REPORT_DIR = report_dir(CFG)
VARIANT_OF = {m: (sweep, v) for sweep, members in SWEEPS.items() for m, v in members}

DATA_DIR = f"results/{DS}/data-{IDS.data}"
# every teacher by name ("teacher" is the main one), and by stage id for the teacher rule
TEACHERS = {"teacher": CFG["teacher"], **CFG["teachers"]}
TEACHER_OF_ID = {IDS.teachers[name]: block for name, block in TEACHERS.items()}


def teacher_dir(name):
    return f"results/{DS}/teacher/{TEACHERS[name]['arch']}-{IDS.teachers[name]}"


TEACHER_DIR = teacher_dir("teacher")
DATA_NPZ = f"{DATA_DIR}/dataset.npz"
DATA_META = f"{DATA_DIR}/meta.json"
TEACHER_CKPT = f"{TEACHER_DIR}/teacher.pt"
TEACHER_METRICS = f"{TEACHER_DIR}/metrics.json"


wildcard_constraints:
    ds=DS,
    ipc=r"\d+",
    seed=r"\d+",
    mid=r"[0-9a-f]{10}",
    sid=r"[0-9a-f]{10}",
    rid=r"[0-9a-f]{10}",
    bid=r"[0-9a-f]{10}",
    cid=r"[0-9a-f]{10}",
    pid=r"[0-9a-f]{10}",
    first=r"\d{4}",
    last=r"\d{4}",
    shard=r"c\d{5}-\d{5}_i\d{4}-\d{4}",


EXPERIMENT = experiment_record(CFG)


onstart:
    announce_experiment()


def shown_path(path):
    """A path as the user would type it: relative to the working directory when inside it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def announce_experiment():
    """Print at the start of a run what runs: config files, stage ids, where they are recorded."""
    if CUDA_MISSING and workflow.local_exec:
        raise ConfigError(CUDA_MISSING)
    ids = EXPERIMENT["stage_ids"]
    methods = ", ".join(f"{m}-{i}" for m, i in ids["methods"].items())
    students = ", ".join(f"{p}-{i}" for p, i in ids["students"].items())
    print(
        f"ddflow: config {', '.join(map(shown_path, workflow.configfiles))}; data {ids['data']}, "
        f"teacher {ids['teacher']}, methods {methods}, students {students}; "
        f"effective config and ids: {REPORT_DIR}/experiment.yaml",
        flush=True,
    )
    print(
        "ddflow: follow the run with `ddflow status` in this folder (jobs done, running with "
        "progress and ETA, failed, left); each job writes its log and <log>.metrics.csv "
        "beside its output (the log paths are in the job lines below)",
        flush=True,
    )


def threads_for_job():
    return CFG["runtime"]["threads"]


# Scheduler resources (ddflow/resources.py): GPU jobs ask for one `gpu` when runtime.device is
# cuda; memory and runtime follow the stage and the dataset, runtime growing with each retry.
DEVICE = "cuda" if CFG["runtime"]["device"] == "cuda" else "cpu"
# Parsing cannot tell a local run from a plan or a cluster's submit host: warn here, and stop a
# local run at its start (announce_experiment), before any job.
CUDA_MISSING = cuda_missing() if DEVICE == "cuda" and not workflow.remote_exec else None
if CUDA_MISSING:
    print(f"ddflow: warning: {CUDA_MISSING}", file=sys.stderr)
GPU = int(DEVICE == "cuda")
DATA_MEM_MB = data_mem_mb(CFG["dataset"], NUM_CLASSES)


def distilled_set_mem_mb(wildcards):
    return distilled_mem_mb(CFG["dataset"], NUM_CLASSES, int(wildcards.ipc))


def recover_runtime(wildcards, attempt):
    s = Shard.parse(wildcards.shard)
    images = (s.c1 - s.c0) * (s.i1 - s.i0)
    iterations = kind_of(METHODS[wildcards.method]).steps(METHODS[wildcards.method])
    return recover_runtime_min(CFG["dataset"], DEVICE, images, iterations, attempt)


def loaded_model_inputs(model_cfg):
    """A loaded model's weights file and class list are inputs: a newer file reruns its stage."""
    inputs = {"npz": DATA_NPZ, "meta": DATA_META}
    for key in ("checkpoint", "classes_file"):
        if model_cfg.get(key):
            inputs[key] = model_cfg[key]
    return inputs


def teacher_block(wildcards):
    """The teacher (main or named) whose stage id the path carries."""
    if wildcards.tid not in TEACHER_OF_ID:
        raise ValueError(
            f"teacher {wildcards.tarch}-{wildcards.tid} is not the current config's"
        )
    return TEACHER_OF_ID[wildcards.tid]


def teacher_inputs(wildcards):
    block = teacher_block(wildcards)
    init = loaded_model_inputs(block.get("init") or {})
    return {
        **loaded_model_inputs(block),
        **{f"init_{k}": v for k, v in init.items() if k not in ("npz", "meta")},
    }


# every statistics pass a method asks for: stats id -> (teacher name, pass settings)
STATS = {
    IDS.stats(name, spec): (name, spec)
    for m in METHODS.values()
    for name, spec in kind_of(m).stats_passes(m)
}


def stats_parts(name, spec):
    """A teacher's statistics, as the parts its pass is split into."""
    xid, k = IDS.stats(name, spec), spec["shards"]
    arch = TEACHERS[name]["arch"]
    return [
        f"results/{DS}/stats/{arch}-{xid}/part{i:03d}-of{k:03d}.npz" for i in range(k)
    ]


def stats_inputs(wildcards):
    name, _ = STATS[wildcards.xid]
    return {
        "npz": DATA_NPZ,
        "meta": DATA_META,
        "teacher": f"{teacher_dir(name)}/teacher.pt",
    }


def stats_params(wildcards):
    if wildcards.xid not in STATS:
        raise ValueError(f"statistics {wildcards.xid} are not the current config's")
    return canonical_json(STATS[wildcards.xid][1])


def ranking_inputs(wildcards):
    if CFG.get("ranker"):
        return loaded_model_inputs(CFG["ranker"])
    return {"npz": DATA_NPZ, "meta": DATA_META, "teacher": TEACHER_CKPT}


def teacher_runtime(wildcards, attempt):
    block = teacher_block(wildcards)
    if teacher_is_loaded(block):
        return inference_runtime(wildcards, attempt)  # load, then one test pass
    images = train_images(CFG["dataset"], NUM_CLASSES)
    epochs = block["epochs"] + 1  # + evaluation
    return training_runtime_min(CFG["dataset"], DEVICE, images, epochs, attempt)


def student_runtime(wildcards, attempt):
    images = NUM_CLASSES * int(wildcards.ipc)
    epochs = CFG["student"]["epochs"]
    return training_runtime_min(CFG["dataset"], DEVICE, images, epochs, attempt)


def relabel_runtime(wildcards, attempt):
    """Teacher forwards over the set for the job's epochs: about a third of student epochs."""
    images = NUM_CLASSES * int(wildcards.ipc)
    epochs = max(1, (int(wildcards.last) - int(wildcards.first) + 1) // 3)
    return training_runtime_min(CFG["dataset"], DEVICE, images, epochs, attempt)


def inference_runtime(wildcards, attempt):
    """Ranking, features, one-job sets, diversity, snapshots: about one pass over the data."""
    images = train_images(CFG["dataset"], NUM_CLASSES)
    return training_runtime_min(CFG["dataset"], DEVICE, images, 1, attempt)


def method_dir(method):
    return f"results/{DS}/recover/{method}-{IDS.method(method)}"


def distilled_dir(method, ipc):
    return f"results/{DS}/distilled/{method}-{IDS.method(method)}/ipc{ipc}"


def shard_plan(method, ipc=None):
    return method_shards(METHODS[method], NUM_CLASSES, IPCS, ipc)


def method_inputs(wildcards):
    """What the method's kind reads: the data always, then teacher, ranking, features, and
    the user's own files (an external set's folder)."""
    check_method_id(wildcards)
    method = METHODS[wildcards.method]
    reads = kind_of(method).reads_for(method)
    inputs = {"npz": DATA_NPZ, "meta": DATA_META}
    for name, path in (
        ("teacher", TEACHER_CKPT),
        ("ranking", RANKING),
        ("features", FEATURES),
    ):
        if name in reads:
            inputs[name] = path
    if "teachers" in reads:  # in turn order, each with its statistics
        inputs["teachers"] = [
            f"{teacher_dir(n)}/teacher.pt" for n in method["teachers"]
        ]
    for i, (n, spec) in enumerate(kind_of(method).stats_passes(method)):
        inputs[f"stats_{i}"] = stats_parts(n, spec)
    if "source" in reads:  # another method's set, read as this one's starts
        # ipc-joint shards hold one IPC value each: the shard's last index + 1
        ipc = Shard.parse(wildcards.shard).i1 if "shard" in wildcards.keys() else None
        name, ipc = kind_of(method).source(method, IPCS, ipc)
        d = distilled_dir(name, ipc)
        inputs["source"] = [f"{d}/images", f"{d}/manifest.json"]
    return {**inputs, **kind_of(method).files(method)}


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
    shards = shard_plan(wildcards.method, int(wildcards.ipc))
    return [f"{method_dir(wildcards.method)}/shards/{s.name}.npz" for s in shards]


def method_content(wildcards):
    """The fingerprint of the user's folder a set is built from: a changed file reruns it."""
    check_method_id(wildcards)
    method = METHODS[wildcards.method]
    manifest = f"{distilled_dir(wildcards.method, wildcards.ipc)}/manifest.json"
    return content_param(manifest, kind_of(method).content(method))


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


def student_recipe(wildcards):
    return IDS.protocols[IDS.protocol_of(wildcards.sid)]


def student_inputs(wildcards):
    """The set and data always; the teacher for online labels, the label shards for stored."""
    distilled = (
        f"results/{DS}/distilled/{wildcards.method}-{wildcards.mid}/ipc{wildcards.ipc}"
    )
    inputs = {
        "images": f"{distilled}/images",
        "manifest": f"{distilled}/manifest.json",
        "npz": DATA_NPZ,
        "meta": DATA_META,
        "teacher_metrics": TEACHER_METRICS,
    }
    protocol = PROTOCOLS[student_recipe(wildcards)["labels"]]
    if protocol.needs_teacher:
        inputs["teacher"] = TEACHER_CKPT
    if LABELERS and (protocol.needs_teacher or protocol.needs_stored):
        inputs["labelers"] = LABELERS
    if protocol.needs_stored:
        inputs["labels"] = label_files(
            wildcards.method, int(wildcards.ipc), IDS.protocol_of(wildcards.sid)
        )
    return inputs


def student_json(wildcards):
    return canonical_json(student_result_keys(student_recipe(wildcards)))


def student_info(wildcards):
    check_method_id(wildcards)
    base, synthesis_seed = base_method(CFG["synthesis_members"], wildcards.method)
    # a method's sets (synthesis seeds) share its row in the tables; the member that keeps the
    # method's name records nothing new, so adding seeds reruns none of its students
    member = (
        {}
        if base == wildcards.method
        else {"set": wildcards.method, "synthesis_seed": synthesis_seed}
    )
    return canonical_json(
        {
            "dataset": DS,
            "method": base,
            **member,
            "kind": METHODS[wildcards.method]["kind"],
            "method_id": wildcards.mid,
            "student": CFG["student"]["arch"],
            "student_id": wildcards.sid,
            "protocol": IDS.protocol_of(wildcards.sid),
            "sweep": VARIANT_OF.get(wildcards.method, (None, None))[0],
            "variant": VARIANT_OF.get(wildcards.method, (None, {}))[1],
        }
    )


def application_inputs(wildcards):
    """As a student's, without stored labels (they fit the whole set only)."""
    return {k: v for k, v in student_inputs(wildcards).items() if k != "labels"}


def pruned_student_inputs(wildcards):
    """Also the teacher: it is slimmed in the job, and the pruned net learns from it."""
    return {**application_inputs(wildcards), "teacher": TEACHER_CKPT}


def application_json(key, app_id, wildcards):
    """An application's settings for a job, once the path's id is the config's."""
    protocol = IDS.protocol_of(wildcards.sid)
    if app_id != IDS.application(key, protocol):
        raise ValueError(f"{key} id {app_id} is not the current config's")
    return canonical_json(IDS.application_slice(key, protocol)[key])


def incremental_runtime(wildcards, attempt):
    """A student per due step, on a growing share of the set: about steps / 2 students."""
    inc = CFG["incremental"]
    images = (
        NUM_CLASSES * int(wildcards.ipc) * max(1, inc["steps"] // (2 * inc["every"]))
    )
    epochs = incremental_recipe(CFG["student"], inc)["epochs"]
    return training_runtime_min(CFG["dataset"], DEVICE, images, epochs, attempt)


def application_results(key, folder, tag):
    """An application's runs on every chosen set: its protocols but stored, IPCs, seeds."""
    return [
        f"results/{DS}/{folder}/{m}-{IDS.method(m)}/ipc{ipc}/student-{sid}/"
        f"{tag}-{IDS.application(key, p)}/seed{s}.json"
        for m in application_methods(CFG, key)
        for ipc in IPCS
        for p, sid in IDS.students.items()
        if IDS.protocols[p]["labels"] != "stored"
        for s in STUDENT_SEEDS
    ]


def relabel_ranges():
    """Epoch ranges, one relabel job each: a large set's labels are several jobs."""
    epochs, per = CFG["student"]["epochs"], CFG["student"]["relabel_epochs_per_shard"]
    return [(a, min(a + per - 1, epochs)) for a in range(1, epochs + 1, per)]


def relabel_outputs(method, ipc):
    rid = IDS.relabel(method, ipc)
    return [
        f"results/{DS}/labels/{method}-{IDS.method(method)}/ipc{ipc}/relabel-{rid}/"
        f"epochs{a:04d}-{b:04d}.npz"
        for a, b in relabel_ranges()
    ]


# Stored protocols with a budget of their own label files (not FKD as published), by file id.
BUDGETS = {
    IDS.budget(p): r["label_budget"]
    for p, r in IDS.protocols.items()
    if r["labels"] == "stored" and not LabelBudget.from_config(r["label_budget"]).full
}


def label_files(method, ipc, protocol):
    """The files a stored-label student reads: the relabel stage's, or its budget's, one for
    each epoch range holding a kept batch."""
    budget = IDS.protocols[protocol]["label_budget"]
    if LabelBudget.from_config(budget).full:
        return relabel_outputs(method, ipc)
    st, n = CFG["student"], NUM_CLASSES * ipc
    batches = batches_per_epoch(n, min(batch_size_for(st["batch_size"], ipc), n))
    ranges = ranges_with_kept(
        LabelBudget.from_config(budget), relabel_ranges(), st["epochs"], batches,
        st["relabel_seed"],
    )  # fmt: skip
    folder = (
        f"results/{DS}/labels/{method}-{IDS.method(method)}/ipc{ipc}/"
        f"relabel-{IDS.relabel(method, ipc)}/budget-{IDS.budget(protocol)}"
    )
    return [f"{folder}/epochs{a:04d}-{b:04d}.npz" for a, b in ranges]


def relabel_params(wildcards):
    check_method_id(wildcards)
    if wildcards.rid != IDS.relabel(wildcards.method, int(wildcards.ipc)):
        raise ValueError(f"relabel-{wildcards.rid} is not the current config's")
    st = CFG["student"]
    params = {
        "views": {k: st[k] for k in VIEW_KEYS},
        "seed": st["relabel_seed"],
        "epochs": [int(wildcards.first), int(wildcards.last)],
        **({"relabel_model": st["relabel_model"]} if st["relabel_model"] else {}),
        **IDS.labeler_slice(),
    }
    if hasattr(wildcards, "bid"):
        if wildcards.bid not in BUDGETS:
            raise ValueError(
                f"budget-{wildcards.bid} is not one of the current config's"
            )
        params["budget"] = BUDGETS[wildcards.bid]
    return canonical_json(params)


def label_budget_inputs(wildcards):
    """The relabel stage's file of the range (budgets made from every batch's labels), or
    what relabelling needs (generate: kept, LPLD: only the kept batches are labelled).
    """
    inputs = relabel_inputs(wildcards)
    if BUDGETS.get(wildcards.bid, {}).get("generate") == "kept":
        return inputs
    source = (
        f"results/{DS}/labels/{wildcards.method}-{wildcards.mid}/ipc{wildcards.ipc}/"
        f"relabel-{wildcards.rid}/epochs{wildcards.first}-{wildcards.last}.npz"
    )
    keep = ("manifest", "meta", "teacher_metrics", "labelers")
    return {"source": source, **{k: v for k, v in inputs.items() if k in keep}}


# The teachers whose combined logits label the students (student.relabel_teachers), or none.
LABELERS = [
    f"{teacher_dir(n)}/teacher.pt" for n in CFG["student"]["relabel_teachers"] or []
]


def relabel_inputs(wildcards):
    distilled = (
        f"results/{DS}/distilled/{wildcards.method}-{wildcards.mid}/ipc{wildcards.ipc}"
    )
    return {
        "images": f"{distilled}/images",
        "manifest": f"{distilled}/manifest.json",
        "npz": DATA_NPZ,
        "meta": DATA_META,
        "teacher": TEACHER_CKPT,
        "teacher_metrics": TEACHER_METRICS,
        **({"labelers": LABELERS} if LABELERS else {}),
    }


def distilled_sets():
    return [(m, ipc) for m in METHODS for ipc in IPCS]


def student_results(methods=None):
    return [
        f"results/{DS}/students/{m}-{IDS.method(m)}/ipc{ipc}/student-{sid}/seed{s}.json"
        for m in (METHODS if methods is None else methods)
        for ipc in IPCS
        for sid in IDS.students.values()
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
        f"{REPORT_DIR}/figures/grid-{m}-ipc{ipc}.png" for m, ipc in distilled_sets()
    ]


PAPER = CFG["report"]["paper"]
PAPER_TABLES = paper_table_names(PAPER)
# The report's grouping: the paper tables an experiment regenerates, or its name.
REPORT_CATEGORY = (
    f"{', '.join(PAPER_TABLES)} ({PAPER['scale']}{f': {REPORT_NAME}' if REPORT_NAME else ''})"
    if PAPER
    else (REPORT_NAME or "results")
)


def paper_table_inputs(wildcards):
    """The summary, the cost table and the teacher's cost (the hours tables), and each
    configured application's table (some paper tables are theirs)."""
    return {
        "summary": f"{REPORT_DIR}/tables/summary.csv",
        "experiment": f"{REPORT_DIR}/experiment.yaml",
        "cost": f"{REPORT_DIR}/tables/cost.csv",
        "teacher": TEACHER_METRICS,
        **{
            key: f"{REPORT_DIR}/tables/{key}.csv"
            for key in ("incremental", "pruning")
            if CFG[key] is not None
        },
    }


def paper_outputs():
    """This experiment's paper tables (ddflow beside the published numbers) and figures."""
    if not PAPER:
        return []
    stems = [file_stem(t) for t in PAPER_TABLES]
    figures = [file_stem(f) for t in PAPER_TABLES for f in figure_for(t)]
    return [
        f"{REPORT_DIR}/paper/cells.csv",
        *[f"{REPORT_DIR}/paper/{s}.md" for s in stems],
        *[
            in_report(
                f"{REPORT_DIR}/paper/{s}.html",
                caption=f"{workflow.basedir}/workflow/report/paper_table.rst",
                category=REPORT_CATEGORY,
                subcategory="paper tables",
                labels={"table": s},
            )
            for s in stems
        ],
        *[
            in_report(
                f"{REPORT_DIR}/paper/{f}.png",
                caption=f"{workflow.basedir}/workflow/report/paper_figure.rst",
                category=REPORT_CATEGORY,
                subcategory="paper tables",
                labels={"figure": f},
            )
            for f in figures
        ],
    ]


# Methods with a crop-scale curriculum (CDA, DELT): the crop figures draw exactly theirs.
CURRICULA = {
    m: {
        k: METHODS[m][k]
        for k in ("iterations", "crop_schedule", "milestone", "min_scale", "max_scale")
    }
    for m in SHARDED
    if METHODS[m].get("crop_schedule", "constant") != "constant"
}
CURVES_TITLE = (
    f"students {CFG['student']['arch']}, {CFG['student']['epochs']} epochs, labels "
    f"{', '.join(IDS.students)}; teacher {CFG['teacher']['arch']}"
)


def final_targets():
    return [
        f"{REPORT_DIR}/experiment.yaml",
        f"{REPORT_DIR}/tables/summary.csv",
        f"{REPORT_DIR}/tables/summary.md",
        f"{REPORT_DIR}/figures/student_curves.png",
        *([f"{REPORT_DIR}/figures/crop_schedules.png"] if CURRICULA else []),
        f"{REPORT_DIR}/tables/diversity.md",
        f"{REPORT_DIR}/figures/diversity.png",
        f"{REPORT_DIR}/tables/cost.md",
        *grid_figures(),
        *[f"{REPORT_DIR}/tables/sweep-{s}.md" for s in SWEEPS],
        *[f"{REPORT_DIR}/figures/sweep-{s}.png" for s in SWEEPS],
        *([f"{REPORT_DIR}/figures/snapshots.png"] if SNAPSHOTS else []),
        *([f"{REPORT_DIR}/figures/label_bytes.png"] if STORED_LABELS else []),
        *([f"{REPORT_DIR}/tables/protocols.md"] if len(IDS.students) > 1 else []),
        *([f"{REPORT_DIR}/tables/label_budgets.md"] if len(STORED_BUDGETS) > 1 else []),
        *(
            [
                f"{REPORT_DIR}/tables/incremental.md",
                f"{REPORT_DIR}/figures/incremental.png",
            ]
            if CFG["incremental"] is not None
            else []
        ),
        *([f"{REPORT_DIR}/tables/pruning.md"] if CFG["pruning"] is not None else []),
        *paper_outputs(),
    ]
