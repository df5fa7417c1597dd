"""`ddflow plan --cost`: what a config will need, per stage and in total, before it runs.

Computed from the config and the models, exact where it can be: the work (image-iterations of
recovery, student image-epochs, relabel passes) and its FLOPs (each model's forward counted once
on the meta device: no memory, no compute; a training step is 3 forwards, a recovery step 2: the
forward and the backward to the input), the disk (images, labels at their budget and as stored,
checkpoints, shards), and the peak host and device memory of each rule with its largest single
allocation (activations at the rule's batch, weights, optimiser state), so an out-of-memory shows
before it happens. Hours come from measured device profiles (`ddflow/profiles/*.json`, written
by benchmarks/cost_profile.py on that device): FLOP/s of recovery, training and inference steps
per model and image size, or their median over the profile's models for a model it lacks (shown
with ~). Where the config reproduces a paper's own hours (CDA Appendix C, DELT Table 5) they are
printed beside.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ddflow.config import StageIds, student_protocols, teacher_is_loaded
from ddflow.methods import kind_of
from ddflow.recover.shards import method_shards

# Sizes of the papers' datasets, for a config whose data is not on this machine:
# name pattern -> (classes, training images, test images).
KNOWN_SIZES = {
    "imagenet21k": (10450, 11_060_223, 522_500),
    "imagenet1k": (1000, 1_281_167, 50_000),
    "imagenet100": (100, 126_689, 5_000),
    "imagenette": (10, 9_469, 3_925),
    "tiny": (200, 100_000, 10_000),
    "cifar100": (100, 50_000, 10_000),
    "cifar10": (10, 50_000, 10_000),
    "mnist-embedded": (10, 4_000, 1_000),
}
TRAIN_FORWARDS, RECOVER_FORWARDS = 3, 2  # a step's FLOPs in forwards of the model
# A step's memory over the activation sum at its batch (in-place outputs not counted twice):
# measured on CPU (VmHWM) 1.1 (ResNet-18 recovery), 1.4 (its training step), 1.6 (DenseNet-121),
# 0.9 (RegNet-Y-8GF) at 224 px; 2.3 for the small ConvNet-D3 at 32 px, whose total is small.
STEP_MEMORY = 1.6
JOB_BASE = 520 * 2**20  # a ddflow job's own peak before its data: Python, torch (measured here)
FILE_INDEX_BYTES = 96  # a file-storage index entry: relative path, label, size and time
CROPS = 10  # the diversity pass's crop rounds (metrics/recognition.py)


@dataclass
class DataSize:
    classes: int
    train: int
    test: int
    chw: tuple[int, int, int]
    storage: str
    known_from: str  # "this machine's folders" or the name pattern used


@dataclass
class Model:
    """A model counted on the meta device: parameters, forward FLOPs and activations a image."""

    arch: str
    params: int
    flops: float
    activations: int  # bytes of every module output (what a training step keeps)
    largest: int  # bytes of the largest one

    @property
    def weights(self) -> int:
        return 4 * self.params


@dataclass
class Stage:
    stage: str
    jobs: int
    work: str
    flops: float = 0.0
    kind: str = "inference"  # which measured rate: recover, train or inference
    arch: str = ""
    size: int = 0
    disk: float = 0.0
    host: float = 0.0
    device: float = 0.0
    largest: float = 0.0
    notes: list[str] = field(default_factory=list)


def data_size(ds: dict) -> DataSize:
    """The data's classes, images and shape: from its folders here, else its known size."""
    from ddflow.data.catalog import FIXED_CLASSES, num_classes
    from ddflow.resources import SOURCE_SHAPE

    size = ds.get("image_size")
    c = 1 if ds["source"] == "mnist-embedded" else 3
    hw = size or int(math.sqrt(SOURCE_SHAPE.get(ds["source"], (64 * 64, 3))[0]))
    name = ds["name"].lower().replace("-", "").replace("_", "")
    pattern = next((k for k in KNOWN_SIZES if k.replace("-", "") in name), None)
    if ds["source"] in FIXED_CLASSES:
        pattern = "mnist-embedded" if ds["source"] == "mnist-embedded" else ds["source"]
    classes, train, test = KNOWN_SIZES.get(pattern, (None, None, None))
    source = f"the known size of '{pattern}'"
    root = Path(ds.get("root") or "")
    if ds["source"] == "imagefolder" and (root / "train").is_dir():
        classes = num_classes(ds)
        split = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
        train = sum(1 for p in (root / "train").rglob("*") if p.is_file())
        test = sum(1 for p in split.rglob("*") if p.is_file()) if split else 0
        source = "its folders on this machine"
    if classes is None:
        raise ValueError(
            f"dataset '{ds['name']}': its folders are not on this machine and its size is not "
            f"known ({sorted(KNOWN_SIZES)}); run the forecast where the data is"
        )
    if ds.get("max_train_per_class"):
        train = min(train, ds["max_train_per_class"] * classes)
    if ds.get("max_test_per_class"):
        test = min(test, ds["max_test_per_class"] * classes)
    storage = ds.get("storage") or "array"
    return DataSize(classes, train, test, (c, hw, hw), storage, source)


_MODELS: dict[tuple, Model] = {}


def count_model(arch: str, classes: int, chw: tuple[int, int, int]) -> Model:
    """Parameters, forward FLOPs (2 x multiply-adds) and activation bytes of one image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ddflow.models import build_model

    key = (arch, classes, chw)
    if key not in _MODELS:
        try:
            with torch.device("meta"):
                model = build_model(arch, classes, chw[0], chw[1:]).eval()
        except NotImplementedError:  # a builder that reads tensor values (RegNet's widths)
            model = build_model(arch, classes, chw[0], chw[1:]).eval().to("meta")
        sizes = []

        def hook(module, inp, out):
            for t in out if isinstance(out, tuple | list) else [out]:
                # an in-place module (ReLU) hands back its input: no new memory
                if isinstance(t, torch.Tensor) and not any(t is i for i in inp):
                    sizes.append(t.numel() * t.element_size())

        hooks = [m.register_forward_hook(hook) for m in model.modules()]
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, *chw, device="meta"))
        for h in hooks:
            h.remove()
        params = sum(p.numel() for p in model.parameters())
        _MODELS[key] = Model(arch, params, counter.get_total_flops(), sum(sizes), max(sizes))
    return _MODELS[key]


def _loaded_outputs(block: dict, classes: int) -> int:
    return 1000 if block.get("classes_file") else classes


def forecast(cfg: dict, data: DataSize | None = None) -> list[Stage]:
    """Per-stage rows for a validated config."""
    from ddflow.config import batch_size_for

    d = data or data_size(cfg["dataset"])
    n, chw, px = d.classes, d.chw, d.chw[0] * d.chw[1] * d.chw[2]
    size = chw[1]
    ipcs = sorted(cfg["ipc"])
    tcfg = cfg["teacher"]
    teacher = count_model(tcfg["arch"], _loaded_outputs(tcfg, n), chw)
    named = {"teacher": tcfg, **cfg.get("teachers", {})}
    rows = []

    # data
    stored = (d.train + d.test) * (FILE_INDEX_BYTES if d.storage == "files" else px)
    decoded = (2 if d.storage == "array" else 1) * stored  # decoded, then stacked
    rows.append(Stage("data", 1, f"{d.train:,} train / {d.test:,} test images ({d.known_from})",
                      disk=stored, host=JOB_BASE + decoded))  # fmt: skip
    held = 0 if d.storage == "files" else d.train * px  # what a job that reads the data holds

    # teacher
    if teacher_is_loaded(tcfg):
        s = Stage("teacher", 1, f"load {tcfg['arch']}, one pass over {d.test:,} test images",
                  d.test * teacher.flops, "inference", tcfg["arch"], size)  # fmt: skip
    else:
        ep = tcfg["epochs"]
        s = Stage("teacher", 1, f"train {tcfg['arch']}: {d.train:,} images x {ep} epochs",
                  d.train * ep * TRAIN_FORWARDS * teacher.flops + ep * d.test * teacher.flops,
                  "train", tcfg["arch"], size)  # fmt: skip
        s.device = STEP_MEMORY * tcfg["batch_size"] * teacher.activations + 4 * teacher.weights
        s.largest = tcfg["batch_size"] * teacher.largest
    s.disk, s.host = teacher.weights, JOB_BASE + held + teacher.weights
    rows.append(s)

    # teacher passes over the training set
    ids = StageIds(cfg)
    reads = set().union(*(kind_of(m).reads_for(m) for m in cfg["methods"].values()))
    for name, stage in (("ranking", "rank"), ("features", "features")):
        if name in reads:
            model = count_model(cfg["ranker"]["arch"], 1000, chw) if (
                name == "ranking" and cfg.get("ranker")) else teacher  # fmt: skip
            rows.append(Stage(stage, 1, f"one pass of {model.arch} over {d.train:,} images",
                              d.train * model.flops, "inference", model.arch, size,
                              disk=d.train * (4 if name == "ranking" else 2 * 512 + 4),
                              host=JOB_BASE + held + model.weights))  # fmt: skip
    del ids

    # methods
    sets = []  # (method, ipc, images)
    for name, m in cfg["methods"].items():
        kind = kind_of(m)
        for ipc in ipcs:
            sets.append((name, ipc, n * ipc))
        if kind.sharded:
            shards = method_shards(m, n, ipcs)
            iters = sum(_image_iterations(m, s.c1 - s.c0, s.i1 - s.i0) for s in shards)
            batch = max(_batch_images(m, s.c1 - s.c0, s.i1 - s.i0) for s in shards)
            batch *= cfg["runtime"].get("pack_batches", 1) if not kind.ipc_joint else 1
            # teachers in turn: a step costs the mean of theirs, a batch the largest's memory
            models = [count_model(named[t]["arch"], _loaded_outputs(named[t], n), chw)
                      for t in m.get("teachers", ["teacher"])]  # fmt: skip
            if "stats" in kind.reads_for(m):
                rows.append(Stage(f"stats {name}", len(models) * m["stats"]["shards"],
                                  f"{len(models)} teacher passes over {d.train:,} images",
                                  d.train * sum(t.flops for t in models), "inference",
                                  models[0].arch, size, host=JOB_BASE + held))  # fmt: skip
            teacher_flops = sum(t.flops for t in models) / len(models)
            s = Stage(
                f"recover {name}",
                len(shards),
                f"{iters:,} image-iterations",
                iters * RECOVER_FORWARDS * teacher_flops,
                "recover",
                tcfg["arch"],
                size,
            )
            s.disk = n * max(ipcs) * px + sum(n * i * px for i in ipcs)  # shards + sets
            big = max(models, key=lambda t: t.activations)
            s.device = batch * (STEP_MEMORY * big.activations + 3 * 4 * px) + sum(
                t.weights for t in models
            )
            s.largest = batch * big.largest
            s.host = JOB_BASE + (held if "data" in kind.reads_for(m) else 0) + teacher.weights
            rows.append(s)
        elif m["kind"] == "rded":
            per_class = min(m["candidates"], d.train // n) * m["num_crops"]
            images = sum(n * per_class for _ in ipcs)
            chunk = max(1, min(512, (2 << 30) // max(1, teacher.activations)))
            rows.append(Stage(f"select {name}", len(ipcs),
                              f"{images:,} candidate crops scored", images * teacher.flops,
                              "inference", tcfg["arch"], size, disk=sum(n * i * px for i in ipcs),
                              host=JOB_BASE + held + per_class * px * 4,
                              device=chunk * teacher.activations + teacher.weights,
                              largest=chunk * teacher.largest))  # fmt: skip
        elif m["kind"] == "cim":  # scoring, then a step over every (real, cell) pair
            scored = len(ipcs) * n * min(m["candidates"], d.train // n)
            pairs = sum(n * 4 * i for i in ipcs)
            chunk = max(1, min(256, (1 << 30) // max(1, teacher.activations)))
            rows.append(Stage(f"select {name}", len(ipcs),
                              f"{scored:,} candidates scored, {pairs * m['iterations']:,} "
                              "pair-steps", (scored + 3 * pairs * m["iterations"]) * teacher.flops,
                              "recover", tcfg["arch"], size, disk=sum(n * i * px for i in ipcs),
                              host=JOB_BASE + held + m["candidates"] * px * 4,
                              device=chunk * STEP_MEMORY * teacher.activations + teacher.weights,
                              largest=chunk * teacher.largest))  # fmt: skip
        elif m["kind"] == "edc_mosaic":  # every image, then the patches, by every teacher
            models = [count_model(named[t]["arch"], _loaded_outputs(named[t], n), chw)
                      for t in m["teachers"]]  # fmt: skip
            kept = min(m["candidates"], d.train // n) // m["chunk"] * m["chunk"]
            patches = n * kept * m["draws"]
            big = max(models, key=lambda t: t.activations)
            chunk = max(1, min(512, (2 << 30) // max(1, big.activations)))
            rows.append(Stage(f"select {name}", len(ipcs),
                              f"{d.train:,} images and {patches:,} patches scored by "
                              f"{len(models)} teachers", len(ipcs) * (d.train + patches)
                              * sum(t.flops for t in models), "inference", models[0].arch, size,
                              disk=sum(n * i * px for i in ipcs), host=JOB_BASE + held,
                              device=chunk * big.activations + sum(t.weights for t in models)
                              + kept * (1 + m["draws"]) * 4 * px,
                              largest=chunk * big.largest))  # fmt: skip
        else:
            rows.append(Stage(f"select {name}", len(ipcs), f"{m['kind']}: real images chosen",
                              disk=sum(n * i * px for i in ipcs),
                              host=JOB_BASE + held))  # fmt: skip

    # relabel and students
    st = cfg["student"]
    protocols = student_protocols(st)
    student = count_model(st["arch"], n, chw)
    labeler = teacher
    if st.get("relabel_model"):
        labeler = count_model(st["relabel_model"]["arch"], _loaded_outputs(st["relabel_model"], n),
                              chw)  # fmt: skip
    # an ensemble labels with all its teachers: their forwards add up, their weights too
    ensemble = [count_model(named[t]["arch"], _loaded_outputs(named[t], n), chw)
                for t in st.get("relabel_teachers") or []]  # fmt: skip
    label_flops = sum(t.flops for t in ensemble) or labeler.flops
    label_weights = sum(t.weights for t in ensemble) or labeler.weights
    if any(p["labels"] == "stored" for p in protocols.values()):
        passes = sum(imgs for _, _, imgs in sets) * st["epochs"]
        per_epoch = [imgs * 2 * n + view_bytes(st, imgs, batch_size_for(st["batch_size"], ipc))
                     for _, ipc, imgs in sets]  # fmt: skip
        jobs = len(sets) * math.ceil(st["epochs"] / st["relabel_epochs_per_shard"])
        s = Stage("relabel", jobs, f"{passes:,} teacher forwards ({st['epochs']} epochs of views)",
                  passes * label_flops, "inference", labeler.arch, size)  # fmt: skip
        s.disk = sum(per_epoch) * st["epochs"]
        budgets = [p["label_budget"] for p in protocols.values() if p["labels"] == "stored"]
        for b in budgets:
            at = sum(label_bytes(b, st, imgs, batch_size_for(st["batch_size"], ipc), n)
                     for _, ipc, imgs in sets)  # fmt: skip
            s.notes.append(f"labels at budget {json.dumps(b, sort_keys=True)}: {human_bytes(at)}")
        s.host = JOB_BASE + max(per_epoch) * st["relabel_epochs_per_shard"] + label_weights
        s.device = label_weights + 64 * labeler.activations
        rows.append(s)
    seeds = len(st["seeds"])
    image_epochs = sum(imgs for _, _, imgs in sets) * st["epochs"] * seeds * len(protocols)
    online = sum(p["labels"] in ("online", "hybrid") for p in protocols.values())
    flops = image_epochs * TRAIN_FORWARDS * student.flops
    flops += sum(imgs for _, _, imgs in sets) * st["epochs"] * seeds * online * label_flops
    evals = math.ceil(st["epochs"] / st["eval_every"]) * d.test * student.flops
    flops += evals * len(sets) * seeds * len(protocols)
    batch = max(batch_size_for(st["batch_size"], ipc) for ipc in ipcs)
    batch = min(batch, st.get("micro_batch") or batch)  # what one forward holds
    s = Stage(
        "student",
        len(sets) * seeds * len(protocols),
        f"{image_epochs:,} image-epochs of {st['arch']}",
        flops,
        "train",
        st["arch"],
        size,
    )
    s.device = (STEP_MEMORY * batch * student.activations + 4 * student.weights
                + label_weights + batch * 3 * labeler.largest)  # fmt: skip
    s.largest = batch * max(student.largest, labeler.largest)
    # the set decoded (its PNGs, then stacked: twice its pixels) beside the test split in memory
    s.host = JOB_BASE + (0 if d.storage == "files" else d.test * px) + 2 * n * max(ipcs) * px
    rows.append(s)
    labeling = (label_flops, label_weights, labeler)
    rows += _applications(cfg, d, protocols, teacher, labeling, s.host)

    # diversity and recognition of every set
    views = sum(imgs for _, _, imgs in sets) * (2 + CROPS)
    rows.append(Stage("diversity", len(sets), f"{views:,} teacher forwards (features, crops)",
                      views * teacher.flops, "inference", tcfg["arch"], size,
                      host=JOB_BASE + 2 * n * max(ipcs) * px + teacher.weights))  # fmt: skip
    return rows


def _applications(cfg, d: DataSize, protocols: dict, teacher: Model, labeling, host) -> list:
    """Incremental: a fresh student at each due step on the seen classes' share of the set.
    Pruning: the slimmed network retrained on each set, taught by the unpruned one. Both run on
    each chosen set at every IPC under the protocols that do not read stored labels."""
    from ddflow.applications.incremental import due_steps
    from ddflow.config import application_methods, batch_size_for, incremental_recipe

    n, size, ipcs = d.classes, d.chw[1], sorted(cfg["ipc"])
    label_flops, label_weights, labeler = labeling
    runs = [p for p in protocols.values() if p["labels"] != "stored"]
    seeds, rows = len(cfg["student"]["seeds"]), []
    for key in ("incremental", "pruning"):
        spec, chosen = cfg.get(key), application_methods(cfg, key)
        if spec is None or not runs:
            continue
        jobs = len(chosen) * len(ipcs) * seeds * len(runs)
        work = flops = device = largest = 0.0
        for p in runs:
            if key == "incremental":
                recipe = incremental_recipe(p, spec)
                steps = due_steps(spec["steps"], spec["every"])
                shares = [k * (n // spec["steps"]) / n for k in steps]  # seen classes' share
                model = count_model(recipe["arch"], n, d.chw)
                extra = 0.0  # the students alone
            else:
                recipe, shares = p, [1.0]
                network = spec.get("network") or cfg["teacher"]
                model = count_model(network["arch"], _loaded_outputs(network, n), d.chw)
                extra = 2 * d.test * model.flops  # the unpruned and the slimmed network tested
            teach = model.flops if key == "pruning" else label_flops  # the unpruned net teaches
            online = p["labels"] in ("online", "hybrid")
            evals = math.ceil(recipe["epochs"] / recipe["eval_every"])
            for ipc in ipcs:
                imgs = [share * n * ipc for share in shares]
                ie = sum(imgs) * recipe["epochs"]
                work += ie * len(chosen) * seeds
                step = TRAIN_FORWARDS * model.flops + (teach if online else 0)
                tests = evals * d.test * sum(shares) * model.flops
                flops += (ie * step + tests + extra) * len(chosen) * seeds
                batch = min(batch_size_for(recipe["batch_size"], ipc), max(1, int(max(imgs))))
                batch = min(batch, recipe.get("micro_batch") or batch)
                device = max(device, STEP_MEMORY * batch * model.activations + 4 * model.weights
                             + (model.weights if key == "pruning" else label_weights)
                             + batch * 3 * labeler.largest)  # fmt: skip
                largest = max(largest, batch * max(model.largest, labeler.largest))
        what = ("students at the due steps, on the seen classes' images" if key == "incremental"
                else f"slimmed {model.arch} retrained (FLOPs of the unpruned network: an upper "
                "bound, the kept channels depend on its weights)")  # fmt: skip
        s = Stage(key, jobs, f"{int(work):,} image-epochs: {what}", flops, "train", model.arch,
                  size, host=host + model.weights, device=device, largest=largest)  # fmt: skip
        rows.append(s)
    return rows


def _image_iterations(m: dict, classes: int, ipcs: int) -> int:
    """A shard's image-iterations: every image x its steps (DELT's rounds: fewer for late ones)."""
    rounds = kind_of(m).ipc_joint and "round_iterations" in m and m.get("early_late", True)
    if not rounds:  # every image all its iterations (no EarlyLate rounds: not DELT)
        return classes * ipcs * kind_of(m).steps(m)
    from ddflow.recover.early_late import image_groups, iterations_per_image

    groups = image_groups(ipcs, m["iterations"], m["round_iterations"], m["early_late"])
    return classes * int(iterations_per_image(groups, m["iterations"], m["round_iterations"]).sum())


def _batch_images(m: dict, classes: int, ipcs: int) -> int:
    """Images optimised together: class-balanced (one IPC index of the shard's classes), DELT's
    class-major batches (every IPC image of the shard's classes), or a global batch of the
    statistics-matching kinds (its per-device chunks in one forward)."""
    if "stat_group" in m:
        return min(m["batch_size"], classes * ipcs)
    return classes * (ipcs if kind_of(m).ipc_joint else 1)


def view_bytes(student: dict, images: int, batch: int, batches: int | None = None) -> int:
    """Stored views of `images` in `batches` batches (one epoch of a set unless given; labels/
    stored.py): an int32 image row, int16 crop box (with crops) and flip flag an image; an
    int32 epoch, position and length a batch; with CutMix its box and weight a batch and an
    int32 partner an image."""
    per_image = 4 + 1 + (8 if (student["min_scale"], student["max_scale"]) != (1.0, 1.0) else 0)
    mix = student["cutmix"] > 0
    if batches is None:
        batches = math.ceil(images / min(batch, images))
    return images * (per_image + (4 if mix else 0)) + batches * (12 + (5 * 8 if mix else 0))


def label_bytes(budget: dict, student: dict, images: int, batch: int, n: int) -> int:
    """The arrays of a set's label files at a budget (labels/budget.py): the kept batches'
    logits (fp16, or int8 with an fp16 offset and step a view; top-k with int16 class indices)
    and their views. The files on disk add their names and checksum (about 1 KB a file)."""
    from ddflow.labels.budget import LabelBudget, batches_per_epoch

    k = budget.get("topk") if budget.get("topk") and budget["topk"] < n else n
    int8 = budget.get("dtype") == "int8"
    index = 2 if n < 2**15 else 4
    per_view = k * (1 if int8 else 2) + (4 if int8 else 0) + (index * k if k < n else 0)
    batch = min(batch, images)
    per_epoch = batches_per_epoch(images, batch)
    kept = LabelBudget.from_config(budget).kept(
        student["epochs"], per_epoch, student["relabel_seed"]
    )
    sizes = [min(batch, images - b * batch) for bb in kept.values() for b in bb]
    return sum(sizes) * per_view + view_bytes(student, sum(sizes), batch, len(sizes))


# ---- device profiles and hours ------------------------------------------------------------


def profiles() -> list[dict]:
    """The measured device profiles shipped with ddflow (and any under ./profiles/)."""
    found = []
    for entry in resources.files("ddflow").joinpath("profiles").iterdir():
        if entry.name.endswith(".json"):
            found.append(json.loads(entry.read_text()))
    for path in sorted(Path("profiles").glob("*.json")) if Path("profiles").is_dir() else []:
        found.append(json.loads(path.read_text()))
    return found


def hours(stage: Stage, profile: dict) -> tuple[float, bool] | None:
    """(hours, extrapolated) of a stage's FLOPs at the profile's measured rate for its model and
    image size, else at the median rate of that kind of step over the profile's models."""
    if not stage.flops:
        return (0.0, False)
    rates = profile["rates"].get(stage.kind, {})
    if not rates:
        return None
    key = f"{stage.arch}@{stage.size}"
    rate = rates.get(key)
    if rate:
        return stage.flops / rate / 3600, False
    return stage.flops / statistics.median(rates.values()) / 3600, True


def paper_hours(cfg: dict) -> list[str]:
    """The paper's own hours for what this config reproduces (method, dataset, IPC)."""
    from ddflow.report.paper import load_published

    pub = load_published()
    pub = pub[pub.metric.isin(["hours", "memory_gb"])]
    paper = cfg["report"].get("paper") or {}
    dataset = paper.get("dataset") or cfg["dataset"]["name"]
    ipc_map = {int(k): int(v) for k, v in (paper.get("ipc") or {}).items()}
    out = []
    for name, m in cfg["methods"].items():
        for ipc in cfg["ipc"]:
            hit = pub[(pub.method == m["kind"]) & (pub.dataset == dataset)
                      & (pub.ipc == ipc_map.get(ipc, ipc))]  # fmt: skip
            for r in hit.itertuples():
                unit = "h" if r.metric == "hours" else "GB"
                out.append(f"{name} IPC {ipc}: {r.paper} {r.table} '{r.row}' / '{r.col}': "
                           f"{r.value:g} {unit} ({r.note})")  # fmt: skip
    return out


def human_bytes(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if b < 1024 or unit == "TB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return ""


def render(cfg: dict, rows: list[Stage]) -> str:
    found = profiles()
    head = ["stage", "jobs", "work", "TFLOP", "disk", "peak host", "peak device (largest)"]
    head += [f"hours: {p['device']}" for p in found]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total = {p["device"]: 0.0 for p in found}
    for s in rows:
        device = f"{human_bytes(s.device)} ({human_bytes(s.largest)})" if s.device else "-"
        work = s.work + "".join(f"; {n}" for n in s.notes)
        cells = [s.stage, str(s.jobs), work, f"{s.flops / 1e12:,.1f}", human_bytes(s.disk),
                 human_bytes(s.host), device]  # fmt: skip
        for p in found:
            h = hours(s, p)
            if h is None:
                cells.append("no rate")
                continue
            total[p["device"]] += h[0]
            cells.append(("~" if h[1] else "") + f"{h[0]:,.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    flops = sum(s.flops for s in rows)
    lines.append("| total | " + str(sum(s.jobs for s in rows)) + " | | "
                 + f"{flops / 1e12:,.1f} | {human_bytes(sum(s.disk for s in rows))} | "
                 + f"{human_bytes(max(s.host for s in rows))} | "
                 + f"{human_bytes(max(s.device for s in rows))} | "
                 + " | ".join(f"{total[p['device']]:,.1f}" for p in found) + " |")  # fmt: skip
    notes = [
        "",
        "Work and FLOPs are counted from the config and the models (forwards on the meta device; "
        "a training step = 3 forwards, a recovery step = 2); disk is what the stages write (sets "
        "as raw pixels: an upper bound of their PNGs); peaks are per job, the largest single "
        "allocation in brackets; hours are FLOPs over the rate a profile measured (~: no "
        "measurement of that model and size there, the profile's median rate for the step).",
    ]
    if not found:
        notes.append("No measured device profile: run benchmarks/cost_profile.py on the device.")
    for p in found:
        notes.append(f"Profile '{p['device']}': measured {p['measured']} by {p['by']}.")
    said = paper_hours(cfg)
    if said:
        notes += ["", "The paper's own figures for what this config reproduces:", ""]
        notes += [f"- {x}" for x in said]
    return "\n".join(lines + notes)
