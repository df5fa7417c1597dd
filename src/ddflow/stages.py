"""Pipeline stages over files: what the workflow scripts and the CLI call.

Each function reads its inputs, checks class maps where artifacts meet, runs the library code,
and writes its outputs atomically with provenance and cost.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ddflow import io
from ddflow.compute import configure
from ddflow.config import VIEW_KEYS, incremental_recipe
from ddflow.data.datasets import check_class_map, load_bundle, prepare
from ddflow.data.pixels import Normalizer
from ddflow.distilled import read_distilled, write_distilled
from ddflow.labels.budget import LabelBudget, batches_per_epoch
from ddflow.labels.protocols import PROTOCOLS
from ddflow.labels.stored import (
    LabelError,
    StoredLabels,
    at_budget,
    check_identity,
    label_identity,
    merge_shards,
    relabel,
)
from ddflow.methods import Inputs, kind_of
from ddflow.metrics.cost import CostMeter
from ddflow.metrics.diversity import centroid_cosine, penultimate_features
from ddflow.metrics.recognition import view_top1
from ddflow.models import build_model
from ddflow.models.pretrained import load_pretrained
from ddflow.recover.resume import ShardResume, state_path
from ddflow.recover.shards import Shard
from ddflow.recover.sre2l import recover_snapshots
from ddflow.select.ranking import teacher_scores, true_class_probs
from ddflow.train.common import TrainingDiverged
from ddflow.train.student import batch_size_for, train_student
from ddflow.train.teacher import squeeze

log = logging.getLogger(__name__)


def run_data(ds_cfg: dict, out_npz: str, out_meta: str) -> None:
    b = prepare(ds_cfg, out_npz, out_meta)
    log.info(
        "data: %d train / %d test images, %d classes, shape %s",
        len(b.train_y),
        len(b.test_y),
        b.num_classes,
        b.image_shape,
    )


def load_teacher(path: str, classes: list[str]) -> tuple[torch.nn.Module, dict]:
    state, meta = io.load_checkpoint(path)
    check_class_map(classes, meta["classes"], f"teacher '{path}'")
    c, h, w = meta["image_shape_chw"]
    model = build_model(meta["arch"], len(meta["classes"]), c, (h, w))
    model.load_state_dict(state)
    return model.eval(), meta


def load_labeler(
    teacher_ckpt: str | None,
    relabel_model: dict | None,
    bundle,
    ensemble: tuple[list[str], str] | None = None,
    batch_stats: tuple[int, bool] | None = None,
) -> torch.nn.Module:
    """The model that labels a student's images: the recovery teacher, a loaded relabel model
    (student.relabel_model: CDA Table 19), or an ensemble of teachers (student.relabel_teachers:
    (their checkpoints, how their logits combine)); with `batch_stats` each teacher normalizes
    with the batch statistics of forward chunks of (that many images, dropout on too)
    (student.relabel_bn)."""
    from ddflow.labels.soft import BatchStatTeacher, Ensemble

    def each(model):
        return BatchStatTeacher(model, *batch_stats) if batch_stats else model

    if ensemble:
        paths, mode = ensemble
        return Ensemble([each(load_teacher(p, bundle.classes)[0]) for p in paths], mode).eval()
    if relabel_model:
        model, _ = load_pretrained(
            relabel_model, bundle.classes, bundle.image_shape, bundle.mean, bundle.std,
            config_key="student.relabel_model",
        )  # fmt: skip
        return each(model)
    return each(load_teacher(teacher_ckpt, bundle.classes)[0])


def labeler_identity(
    teacher_stage_id: str, relabel_model: dict | None, labelers=None, mode: str = "mean"
) -> dict:
    """Who labels a set, as stored labels record it: an ensemble (its teachers' stage ids, read
    beside their checkpoints, and how they combine), a loaded relabel model, or the teacher."""
    if labelers:
        ids = [io.read_json(Path(p).with_name("metrics.json"))["stage_id"] for p in labelers]
        return {"relabel_teachers": ids, "ensemble": mode}
    return {"relabel_model": relabel_model} if relabel_model else {"teacher": teacher_stage_id}


def _ensemble(labelers: list[str] | None, cfg: dict) -> tuple[list[str], str] | None:
    return (labelers, cfg.get("ensemble", "mean")) if labelers else None


def _batch_stats(cfg: dict) -> tuple[int, bool] | None:
    """(forward chunk, dropout) of train-mode labelers (student.relabel_bn: batch or train)."""
    mode = cfg.get("relabel_bn", "eval")
    return None if mode == "eval" else (cfg["relabel_chunk"], mode == "train")


def run_teacher(
    data_npz: str,
    data_meta: str,
    cfg: dict,
    stage_id: str,
    runtime: dict,
    out_ckpt: str,
    out_metrics: str,
    threads: int | None = None,
) -> None:
    device = configure(runtime, threads)
    bundle = load_bundle(data_npz, data_meta)
    with CostMeter(device) as cost:
        model, metrics = squeeze(bundle, cfg, device)
    meta = {
        "arch": cfg["arch"],
        "classes": bundle.classes,
        "mean": bundle.mean,
        "std": bundle.std,
        "image_shape_chw": list(bundle.image_shape),
        "test_top1": metrics["test_top1"],
        "stage_id": stage_id,
        "config": cfg,
    }
    io.save_checkpoint(out_ckpt, {k: v.cpu() for k, v in model.state_dict().items()}, meta)
    io.write_json(
        out_metrics,
        {
            **metrics,
            "stage_id": stage_id,
            "cost": cost.as_dict(),
            "provenance": io.provenance(device, {"teacher": cfg.get("seed")}),
        },
    )


def run_rank(
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str | None,
    ranker: dict | None,
    runtime: dict,
    out_npz: str,
    threads: int | None = None,
) -> None:
    """Probability of the true class for every training image (DELT's ranking), by the teacher
    or by a separately loaded ranker."""
    device = configure(runtime, threads)
    b = load_bundle(data_npz, data_meta)
    if ranker:
        model, source = load_pretrained(
            ranker,
            b.classes,
            b.image_shape,
            b.mean,
            b.std,
            keep_all_outputs=True,
            config_key="ranker",
        )
        rows = source["class_rows"]
    else:
        model, _ = load_teacher(teacher_ckpt, b.classes)
        rows = None
    scores = true_class_probs(
        model.to(device), b.train_x, b.train_y, Normalizer(b.mean, b.std, device), class_rows=rows
    )
    io.save_npz(out_npz, scores=scores, labels=b.train_y)


def run_stats(
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str,
    spec: dict,
    part: tuple[int, int],
    runtime: dict,
    out_npz: str,
    threads: int | None = None,
) -> None:
    """Part k of K of a teacher's statistics pass (recover/stats.py): a run of its batches; or
    the authors' shipped statistics it reads instead (spec['import'])."""
    from ddflow.recover.loop import freeze
    from ddflow.recover.stats import import_statistics, teacher_statistics

    device = configure(runtime, threads)
    b = load_bundle(data_npz, data_meta)
    teacher = freeze(load_teacher(teacher_ckpt, b.classes)[0].to(device))
    if spec.get("import"):
        stats = import_statistics(spec["import"], teacher, b.image_shape, spec["patch"])
        io.save_npz(out_npz, **stats)
        log.info("statistics of %d convolutions' inputs read from %s", len(stats) // 4,
                 spec["import"])  # fmt: skip
        return
    k, parts = part
    n_batches = -(-len(b.train_y) // spec["batch_size"])
    batches = range(k * n_batches // parts, (k + 1) * n_batches // parts)
    with CostMeter(device) as cost:
        stats = teacher_statistics(
            teacher, b.train_x, b.train_y, Normalizer(b.mean, b.std, device), spec,
            b.num_classes, batches,
        )  # fmt: skip
    io.save_npz(out_npz, **stats)
    log.info("statistics of %d layers' inputs, batches %s, in %.1fs", len(stats), batches,
             cost.wall_s)  # fmt: skip


def load_recovery_inputs(
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str | None,
    ranking: str | None,
    method: dict,
    stage_id: str,
    device,
    teachers: list[str] | None = None,
    stats: list[list[str]] | None = None,
    source: list[str] | None = None,
) -> Inputs:
    """What a recovery job's kind reads: the data, its teacher (or teachers, each with its
    statistics shards merged), the ranking."""
    from ddflow.recover.loop import freeze
    from ddflow.recover.stats import finish, merge

    meta = io.read_json(data_meta)
    reads = kind_of(method).reads_for(method)
    loaded = [freeze(load_teacher(p, meta["classes"])[0].to(device)) for p in teachers or []]
    targets = [finish(merge([io.load_npz(p) for p in shards])) for shards in stats or []]
    return Inputs(
        stage_id=stage_id,
        norm=Normalizer(meta["mean"], meta["std"], device),
        device=device,
        chw=tuple(meta["image_shape_chw"]),
        bundle=load_bundle(data_npz, data_meta) if "data" in reads else None,
        teacher=load_teacher(teacher_ckpt, meta["classes"])[0].to(device) if teacher_ckpt else None,
        scores=io.load_npz(ranking, "scores")["scores"] if ranking else None,
        teachers=loaded or None,
        stats=targets or None,
        source=tuple(source) if source else None,
    )


def run_recover_shard(
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str,
    ranking: str | None,
    method: dict,
    stage_id: str,
    shard_name: str,
    runtime: dict,
    out_npz: str,
    threads: int | None = None,
    teachers: list[str] | None = None,
    stats: list[list[str]] | None = None,
    source: list[str] | None = None,
) -> None:
    device = configure(runtime, threads)
    inputs = load_recovery_inputs(
        data_npz,
        data_meta,
        teacher_ckpt,
        ranking,
        method,
        stage_id,
        device,
        teachers,
        stats,
        source,
    )
    shard = Shard.parse(shard_name)
    resume = ShardResume(
        state_path(out_npz), f"{stage_id}/{shard_name}", runtime["checkpoint_every"]
    )
    with CostMeter(device) as cost:
        out = kind_of(method).recover(
            inputs, method, shard, runtime["log_every"], resume, runtime["pack_batches"]
        )
    cost_info = {**cost.as_dict(), "image_iterations": int(out["iterations"].sum())}
    io.save_npz(out_npz, **out, cost_json=np.array(json.dumps(cost_info)))
    resume.clear()
    log.info("shard %s: %d images in %.1fs", shard_name, len(out["labels"]), cost.wall_s)


def run_features(
    data_npz: str, data_meta: str, teacher_ckpt: str, runtime: dict, out_npz: str, threads=None
) -> None:
    """The teacher's penultimate features and EL2N over the training set (coreset kinds)."""
    device = configure(runtime, threads)
    b = load_bundle(data_npz, data_meta)
    teacher, _ = load_teacher(teacher_ckpt, b.classes)
    with CostMeter(device) as cost:
        out = teacher_scores(
            teacher.to(device), b.train_x, b.train_y, Normalizer(b.mean, b.std, device)
        )
    io.save_npz(out_npz, **out, cost_json=np.array(json.dumps(cost.as_dict())))
    log.info("features: %s per image in %.1fs", out["features"].shape[1:], cost.wall_s)


def run_select(
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str | None,
    features_npz: str | None,
    ipc: int,
    method: dict,
    stage_id: str,
    manifest: dict,
    runtime: dict,
    out_images: str,
    out_manifest: str,
    threads: int | None = None,
    teachers: list[str] | None = None,
) -> None:
    """A set built in one job by its kind (random subset, RDED, coresets, CIM, EDC's mosaics),
    class-major."""
    from ddflow.recover.loop import freeze

    device = configure(runtime, threads)
    b = load_bundle(data_npz, data_meta)
    teacher = load_teacher(teacher_ckpt, b.classes)[0].to(device) if teacher_ckpt else None
    loaded = [freeze(load_teacher(p, b.classes)[0].to(device)) for p in teachers or []]
    inputs = Inputs(
        stage_id=stage_id,
        norm=Normalizer(b.mean, b.std, device),
        device=device,
        chw=b.image_shape,
        bundle=b,
        teacher=teacher,
        features=io.load_npz(features_npz, "features", "el2n") if features_npz else None,
        teachers=loaded or None,
    )
    with CostMeter(device) as cost:
        images, extra = kind_of(method).build(inputs, method, ipc)
    write_distilled(
        out_images,
        out_manifest,
        images,
        np.repeat(np.arange(b.num_classes), ipc),
        np.tile(np.arange(ipc), b.num_classes),
        b.classes,
        {
            **manifest,
            "ipc": ipc,
            **extra,
            "cost": _set_cost(cost.as_dict()),
        },
    )


def _set_cost(stage: dict, image_iterations: int = 0, shards: int | None = None) -> dict:
    """A set's build cost in the manifest, one form for every kind: time, image-iterations and
    peak memory (host, and device on CUDA) of the job(s) that built it."""
    out = {
        "recover_wall_s": stage["wall_s"],
        "recover_image_iterations": image_iterations,
        "recover_peak_rss_mb": stage["peak_rss_mb"],
        **({"recover_peak_gpu_mb": stage["peak_gpu_mb"]} if "peak_gpu_mb" in stage else {}),
    }
    return {**out, **({"shards": shards} if shards is not None else {})}


def run_snapshots(
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str,
    ranking: str | None,
    method: dict,
    stage_id: str,
    classes: list[int],
    steps: list[int],
    runtime: dict,
    out_npz: str,
    threads: int | None = None,
) -> None:
    device = configure(runtime, threads)
    inputs = load_recovery_inputs(
        data_npz, data_meta, teacher_ckpt, ranking, method, stage_id, device
    )
    images = recover_snapshots(
        inputs.teacher,
        inputs.norm,
        inputs.chw,
        method,
        stage_id,
        len(io.read_json(data_meta)["classes"]),
        classes,
        steps,
        device,
        kind_of(method).initializer(inputs, method),
    )
    io.save_npz(out_npz, images=images, steps=np.asarray(steps), classes=np.asarray(classes))


def run_assemble(
    shard_npzs: list[str],
    data_meta: str,
    ipc: int,
    manifest: dict,
    out_images: str,
    out_manifest: str,
) -> None:
    """Collect the first `ipc` images per class from the shards into the distilled set."""
    classes = io.read_json(data_meta)["classes"]
    parts, costs = [], []
    for path in shard_npzs:
        z = io.load_npz(path, "images", "labels", "ipc_index", "iterations", "cost_json")
        keep = z["ipc_index"] < ipc
        parts.append({k: z[k][keep] for k in ("images", "labels", "ipc_index", "iterations")})
        costs.append(json.loads(str(z["cost_json"])))
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((merged["ipc_index"], merged["labels"]))
    merged = {k: v[order] for k, v in merged.items()}
    counts = np.bincount(merged["labels"], minlength=len(classes))
    if not (counts == ipc).all():
        raise RuntimeError(
            f"assembled set has {counts.tolist()} images per class, expected {ipc}"
            " each: the shard plan does not cover every (class, IPC index)"
        )
    stage = {
        "wall_s": round(sum(c["wall_s"] for c in costs), 3),
        "peak_rss_mb": max(c["peak_rss_mb"] for c in costs),
        **(
            {"peak_gpu_mb": max(c["peak_gpu_mb"] for c in costs)}
            if all("peak_gpu_mb" in c for c in costs)
            else {}
        ),
    }
    cost = _set_cost(stage, sum(c["image_iterations"] for c in costs), len(costs))
    write_distilled(
        out_images,
        out_manifest,
        merged["images"],
        merged["labels"],
        merged["ipc_index"],
        classes,
        {**manifest, "ipc": ipc, "cost": cost},
        iterations=merged["iterations"],
    )


def run_relabel(
    images_dir: str,
    manifest_path: str,
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str | None,
    teacher_metrics: str,
    params: dict,
    runtime: dict,
    out_npz: str,
    threads: int | None = None,
    labelers: list[str] | None = None,
    source: str | None = None,
) -> None:
    """FKD relabel of one epoch range at a label budget (§1.5; labels/budget.py): the views and
    the teacher's logits of the kept batches, encoded, with what they label (set, labeler,
    recipe, classes, budget) so no other student can take them. From `source`, the relabel
    stage's file of the range, only the budget's share is kept; otherwise only the kept batches
    are labelled (LPLD's generation of the kept batches alone)."""
    budget = LabelBudget.from_config(params.get("budget", {}))
    device = configure(runtime, threads)
    classes = io.read_json(data_meta)["classes"]
    expected = _expected_identity(manifest_path, teacher_metrics, params, labelers, len(classes))
    views, seed = params["views"], params["seed"]
    first, last = params["epochs"]
    with CostMeter(device) as cost:
        if source:
            records = read_label_shard(source, {**expected, "budget": LabelBudget().slice()})
            made_s = float(records.pop("wall_s"))
        else:
            bundle = load_bundle(data_npz, data_meta)
            teacher = load_labeler(
                teacher_ckpt,
                params.get("relabel_model"),
                bundle,
                _ensemble(labelers, params),
                _batch_stats(params),
            )
            images, _, _ = read_distilled(images_dir, manifest_path, bundle.classes)
            bs = min(batch_size_for(views["batch_size"], len(images) // len(classes)), len(images))
            kept = None
            if not budget.full:
                kept = budget.kept(views["epochs"], batches_per_epoch(len(images), bs), seed)
            norm = Normalizer(bundle.mean, bundle.std, device)
            records = relabel(images, teacher.to(device), norm, views, bs, seed,
                              range(first, last + 1), kept)  # fmt: skip
            if not np.isfinite(records["values"].astype(np.float32)).all():
                raise TrainingDiverged(
                    f"teacher '{teacher_ckpt}' gave non-finite logits (fp16 overflow?); nothing "
                    "written"
                )
            made_s = 0.0
        if not budget.full:
            records = at_budget(records, budget, seed)
    io.save_npz(
        out_npz,
        **records,
        wall_s=np.asarray(made_s + cost.as_dict()["wall_s"], np.float64),
        identity_json=np.array(json.dumps({**expected, "budget": budget.slice()}, sort_keys=True)),
    )


def _expected_identity(manifest_path, teacher_metrics, params, labelers, num_classes) -> dict:
    """What labels of this set, labeler, views recipe and classes record (the budget aside)."""
    labeler = labeler_identity(
        io.read_json(teacher_metrics)["stage_id"], params.get("relabel_model"), labelers,
        params.get("ensemble", "mean"),
    )  # fmt: skip
    return label_identity(manifest_path, labeler, params["views"], params["seed"], num_classes,
                          None)  # fmt: skip


def read_label_shard(path: str, expected: dict) -> dict[str, np.ndarray]:
    """A label file, once its checksum, finiteness and identity hold for this student."""
    z = io.load_npz(path)
    recorded = json.loads(str(z.pop("identity_json"))) if "identity_json" in z else None
    check_identity(path, recorded, expected)
    if int(z["num_classes"]) != expected["num_classes"]:
        raise LabelError(
            f"stored labels '{path}' hold logits over {int(z['num_classes'])} classes, the data "
            f"has {expected['num_classes']}; delete the file and rerun, which relabels this set"
        )
    return z


def _write_run(out_json, info, result, seed, manifest, cost, device, **fields) -> None:
    """A trained network's record (student, incremental, pruned): who, what it scored, cost."""
    io.write_json(
        out_json,
        {
            **info,
            **result,
            "seed": seed,
            "ipc": manifest["ipc"],
            **fields,
            "cost": cost.as_dict(),
            "provenance": io.provenance(device, {"student": seed}),
        },
    )


def _load_set(runtime, threads, data_npz, data_meta, images_dir, manifest_path):
    """(device, data bundle, the set's images, their classes, its manifest) for a training job."""
    device = configure(runtime, threads)
    bundle = load_bundle(data_npz, data_meta)
    images, targets, manifest = read_distilled(images_dir, manifest_path, bundle.classes)
    return device, bundle, images, targets, manifest


def run_student(
    images_dir: str,
    manifest_path: str,
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str | None,
    teacher_metrics: str,
    cfg: dict,
    seed: int,
    info: dict,
    runtime: dict,
    out_json: str,
    threads: int | None = None,
    label_shards: list[str] | None = None,
    labelers: list[str] | None = None,
) -> None:
    """One student under cfg['labels']; the teacher is loaded only when the protocol runs it."""
    device, bundle, images, targets, manifest = _load_set(
        runtime, threads, data_npz, data_meta, images_dir, manifest_path
    )
    protocol = PROTOCOLS[cfg["labels"]]
    teacher, stored, labels_cost = None, None, {}
    if protocol.needs_teacher:
        teacher = load_labeler(
            teacher_ckpt,
            cfg.get("relabel_model"),
            bundle,
            _ensemble(labelers, cfg),
            _batch_stats(cfg),
        )
    if protocol.needs_stored:
        budget = LabelBudget.from_config(cfg["label_budget"])
        params = {
            "views": {k: cfg[k] for k in VIEW_KEYS},
            "seed": cfg["relabel_seed"],
            "ensemble": cfg.get("ensemble", "mean"),
            "relabel_model": cfg.get("relabel_model"),
        }
        expected = _expected_identity(
            manifest_path, teacher_metrics, params, labelers, bundle.num_classes
        )
        expected["budget"] = budget.slice()
        shards = [read_label_shard(p, expected) for p in label_shards]
        stored = StoredLabels(
            merge_shards([{k: v for k, v in s.items() if k != "wall_s"} for s in shards]),
            budget,
            file_bytes=sum(Path(p).stat().st_size for p in label_shards),
        )
        labels_cost = {"relabel_wall_s": sum(float(s["wall_s"]) for s in shards)}
    with CostMeter(device) as cost:
        result = train_student(
            images, teacher, bundle, cfg, seed, device, targets=targets, stored=stored
        )
    image_bytes = sum((Path(images_dir) / f["file"]).stat().st_size for f in manifest["files"])
    _write_run(
        out_json, info, result, seed, manifest, cost, device,
        teacher_top1=io.read_json(teacher_metrics)["test_top1"],
        distilled_image_bytes=image_bytes,
        distill_cost={**manifest["cost"], **labels_cost},
        labels=label_storage(cfg, protocol, teacher, stored, len(images), bundle),
    )  # fmt: skip


def run_incremental(
    images_dir: str,
    manifest_path: str,
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str | None,
    cfg: dict,
    spec: dict,
    seed: int,
    info: dict,
    runtime: dict,
    out_json: str,
    threads: int | None = None,
    labelers: list[str] | None = None,
) -> None:
    """Class-incremental learning on one set under one protocol and student seed."""
    from ddflow.applications.incremental import run_incremental as incremental

    device, bundle, images, targets, manifest = _load_set(
        runtime, threads, data_npz, data_meta, images_dir, manifest_path
    )
    protocol = PROTOCOLS[cfg["labels"]]
    teacher = (
        load_labeler(
            teacher_ckpt,
            cfg.get("relabel_model"),
            bundle,
            _ensemble(labelers, cfg),
            _batch_stats(cfg),
        )  # fmt: skip
        if protocol.needs_teacher
        else None
    )
    # the incremental block's student keys; the set's own batch size at its IPC, whatever each
    # step's share of it
    recipe = incremental_recipe(cfg, spec)
    recipe["batch_size"] = batch_size_for(recipe["batch_size"], manifest["ipc"])
    with CostMeter(device) as cost:
        result = incremental(
            images, targets, bundle, teacher, recipe, seed, device, spec, train_student
        )
    _write_run(out_json, info, result, seed, manifest, cost, device, incremental=spec)


def run_pruned_student(
    images_dir: str,
    manifest_path: str,
    data_npz: str,
    data_meta: str,
    teacher_ckpt: str,
    teacher_metrics: str,
    cfg: dict,
    spec: dict,
    seed: int,
    info: dict,
    runtime: dict,
    out_json: str,
    threads: int | None = None,
) -> None:
    """Data-free pruning: slim the teacher, then retrain the pruned network from its kept
    weights on one distilled set, learning from the unpruned teacher under cfg['labels']."""
    from ddflow.applications.pruning import slim
    from ddflow.train.common import evaluate

    device, bundle, images, targets, manifest = _load_set(
        runtime, threads, data_npz, data_meta, images_dir, manifest_path
    )
    if spec.get("network"):  # a loaded network of its own, which teaches its pruned copy
        teacher, source = load_pretrained(
            spec["network"], bundle.classes, bundle.image_shape, bundle.mean, bundle.std,
            config_key="pruning.network",
        )  # fmt: skip
        meta = {"arch": spec["network"]["arch"]}
    else:
        teacher, meta = load_teacher(teacher_ckpt, bundle.classes)
        source = {"kind": "teacher", "path": teacher_ckpt}
    pruned, pruning = slim(teacher, spec["ratio"], spec["scope"])
    pruning["network"] = source
    norm = Normalizer(bundle.mean, bundle.std, device)
    pruning["top1_unpruned"] = evaluate(
        teacher.to(device), bundle.test_x, bundle.test_y, norm, task="unpruned test"
    )
    pruning["top1_after_surgery"] = evaluate(
        pruned.to(device), bundle.test_x, bundle.test_y, norm, task="pruned test"
    )
    kd = teacher if PROTOCOLS[cfg["labels"]].needs_teacher else None
    with CostMeter(device) as cost:
        result = train_student(images, kd, bundle, cfg, seed, device, targets=targets, model=pruned)
    scope = "" if spec["scope"] == "global" else f" per {spec['scope']}"
    _write_run(
        out_json, {**info, "student": f"{meta['arch']} slimmed {spec['ratio']:g}{scope}"},
        result, seed, manifest, cost, device,
        teacher_top1=io.read_json(teacher_metrics)["test_top1"], pruning=pruning,
    )  # fmt: skip


def label_storage(cfg, protocol, teacher, stored, n_images, bundle) -> dict:
    """What the protocol needs beside the images at training time, in bytes."""
    out = {"protocol": cfg["labels"], "teacher_at_training": protocol.needs_teacher}
    if teacher is not None:
        params = [*teacher.parameters(), *teacher.buffers()]
        out["teacher_bytes"] = sum(t.numel() * t.element_size() for t in params)
    out["label_bytes"] = n_images * 2 if protocol.needs_hard else 0  # int16 class indices
    if stored is not None:  # the label files' bytes on disk; the arrays in them beside
        from ddflow.forecast import label_bytes

        out["label_bytes"] += stored.file_bytes
        out["label_array_bytes"] = stored.bytes["logits"] + stored.bytes["views"]
        out["label_budget"] = cfg["label_budget"]
        batch = int(stored.records["batch_size"])  # FKD's arrays for the same views
        out["full_label_bytes"] = label_bytes({}, cfg, n_images, batch, bundle.num_classes)
    if protocol.needs_teacher:
        # what FKD would store for the same epochs: fp16 logits of every image every epoch
        out["label_bytes_if_stored"] = cfg["epochs"] * n_images * bundle.num_classes * 2
    return out


def run_diversity(
    images_dir: str,
    manifest_path: str,
    data_meta: str,
    teacher_ckpt: str,
    info: dict,
    runtime: dict,
    out_json: str,
    threads: int | None = None,
    classifier: dict | None = None,
) -> None:
    """Intra-class diversity (teacher features) and recognition of whole images vs random
    crops (the teacher, or `classifier`: CDA Table 9)."""
    device = configure(runtime, threads)
    meta = io.read_json(data_meta)
    teacher, _ = load_teacher(teacher_ckpt, meta["classes"])
    images, labels, manifest = read_distilled(images_dir, manifest_path, meta["classes"])
    norm = Normalizer(meta["mean"], meta["std"], device)
    feats = penultimate_features(teacher.to(device), images, norm)
    if classifier:  # a loaded model of its own recognises the images (CDA: MobileNet-V2)
        model, _ = load_pretrained(
            classifier, meta["classes"], tuple(meta["image_shape_chw"]), meta["mean"],
            meta["std"], config_key="report.set_classifier",
        )  # fmt: skip
        name = classifier["arch"]
    else:
        model, name = teacher, "teacher"
    recognition = {"classifier": name, **view_top1(model.to(device), images, labels, norm)}
    io.write_json(
        out_json,
        {
            **info,
            "ipc": manifest["ipc"],
            **centroid_cosine(feats, labels),
            "recognition": recognition,
        },
    )
