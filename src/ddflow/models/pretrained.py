"""Teachers that are loaded, not trained: torchvision's published weights or a local checkpoint.

The papers' ImageNet teachers are torchvision's pretrained ResNet-18 (SRe2L, CDA, DELT) and
RDED's released observers; an ImageNet-1K teacher serves a class subset (ImageNet-100) by keeping
only its classifier rows for those classes (RDED's `pruning_classifier`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from torch import nn

from ddflow.errors import DdflowError
from ddflow.models.registry import build_model, final_linear


class TeacherError(DdflowError):
    """A teacher that cannot be loaded as configured, with the fix in the message."""


def _torchvision_weights(arch: str, name: str):
    from torchvision.models import get_model_weights

    if not arch.startswith("torchvision:"):
        raise TeacherError(
            f"config key 'teacher.pretrained': published weights are torchvision's, but "
            f"teacher.arch is '{arch}'; use arch torchvision:<name>, or save the weights to a "
            "file and set teacher.checkpoint"
        )
    enum = get_model_weights(arch.split(":", 1)[1])
    if name not in enum.__members__:
        raise TeacherError(
            f"config key 'teacher.pretrained': '{name}' is not a weight set of {arch}; "
            f"choose from {list(enum.__members__)}"
        )
    return enum[name]


def _fetch_torchvision(weights) -> dict:
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except OSError as e:  # URLError is one: no network, proxy, ...
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise TeacherError(
            f"could not fetch torchvision weights {weights} from {weights.url} ({e}). Without "
            f"network access, download that file elsewhere and place it at '{cache}' "
            "(or set TORCH_HOME), or set teacher.checkpoint to a local copy"
        ) from e


def _read_checkpoint(path: str, key: str | None) -> dict:
    p = Path(path)
    if not p.is_file():
        raise TeacherError(
            f"config key 'teacher.checkpoint': file '{p}' not found; point it at a saved "
            "state dict (.pt/.pth)"
        )
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or objects weights_only refuses
        raise TeacherError(
            f"config key 'teacher.checkpoint': '{p}' cannot be read as a weights file "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). It is truncated, not a torch "
            "checkpoint, or holds Python objects beyond tensors (refused: loading them would run "
            "code); save a plain state dict (torch.save(model.state_dict(), path))"
        ) from None
    if not isinstance(blob, dict):
        raise TeacherError(
            f"config key 'teacher.checkpoint': '{p}' holds a {type(blob).__name__}, not a state "
            "dict; save torch.save(model.state_dict(), path)"
        )
    if key is not None:
        if key not in blob:
            raise TeacherError(
                f"config key 'teacher.checkpoint_key': '{key}' not in '{p}' (keys: "
                f"{sorted(blob)[:10]})"
            )
        blob = blob[key]
    else:
        for k in ("model", "state_dict"):  # the authors' observers and SRe2L's CIFAR teacher
            if k in blob and isinstance(blob[k], dict):
                blob = blob[k]
                break
    # DataParallel checkpoints (SRe2L's CIFAR teacher) prefix every key with 'module.'.
    return {k.removeprefix("module."): v for k, v in blob.items()}


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _class_rows(n_out: int, classes: list[str], classes_file: str | None) -> list[int] | None:
    """Classifier rows that give the dataset's classes, or None when all rows are used as is."""
    if classes_file is None:
        if n_out != len(classes):
            raise TeacherError(
                f"the teacher has {n_out} outputs but the dataset has {len(classes)} classes: set "
                "teacher.classes_file to the teacher's class list (one name per line, in output "
                "order, e.g. the sorted ImageNet-1K WNIDs) to keep only the dataset's classes"
            )
        return None
    names = [ln.strip() for ln in Path(classes_file).read_text().splitlines() if ln.strip()]
    if len(names) != n_out:
        raise TeacherError(
            f"teacher.classes_file '{classes_file}' lists {len(names)} classes but the teacher "
            f"has {n_out} outputs; it must list every output, in order"
        )
    missing = [c for c in classes if c not in names]
    if missing:
        raise TeacherError(
            f"{len(missing)} dataset classes are not in teacher.classes_file '{classes_file}' "
            f"(first: {missing[:5]}); the teacher cannot label them"
        )
    return [names.index(c) for c in classes]


def load_pretrained(
    cfg: dict,
    classes: list[str],
    chw: tuple[int, int, int],
    mean: list[float],
    std: list[float],
    keep_all_outputs: bool = False,
    config_key: str = "teacher",
    fresh_head: bool = False,
) -> tuple[nn.Module, dict]:
    """(model, source record) for a teacher with weights to load; the model answers for the
    dataset's classes, or with `keep_all_outputs` for all of its own (source's class_rows then
    map dataset classes to outputs: a ranker's softmax runs over every class it knows).
    Errors name the keys under `config_key` (the same keys serve the teacher and the ranker).
    `fresh_head`: weights to train from; without a classes_file, a classifier over other classes
    is returned as it is (init_from leaves the model's own, fresh one in place)."""
    try:
        return _load(cfg, classes, chw, mean, std, keep_all_outputs, fresh_head)
    except TeacherError as e:
        if config_key == "teacher":
            raise
        # teacher.init's weights fit teacher.arch: that key keeps its name
        keep = r"(?!arch)" if config_key.startswith("teacher.") else ""
        raise TeacherError(re.sub(rf"teacher\.{keep}", f"{config_key}.", str(e))) from e


def _load(cfg, classes, chw, mean, std, keep_all_outputs, fresh_head=False):
    if cfg.get("pretrained") and cfg.get("checkpoint"):
        raise TeacherError(
            "config keys 'teacher.pretrained' and 'teacher.checkpoint': set one, not both"
        )
    c, h, w = chw
    if cfg.get("pretrained"):
        weights = _torchvision_weights(cfg["arch"], cfg["pretrained"])
        expected = weights.transforms()
        if any(abs(a - b) > 1e-3 for a, b in zip([*mean, *std], [*expected.mean, *expected.std])):
            raise TeacherError(
                f"{weights} expect inputs normalized with mean {expected.mean} and std "
                f"{expected.std}, but the data stage uses mean {mean} and std {std}: set "
                "dataset.mean and dataset.std to the weights' values"
            )
        state = _fetch_torchvision(weights)
        source = {"kind": "torchvision", "weights": str(weights), "url": weights.url}
    else:
        state = _read_checkpoint(cfg["checkpoint"], cfg.get("checkpoint_key"))
        source = {
            "kind": "checkpoint",
            "path": str(Path(cfg["checkpoint"]).resolve()),
            "sha256": file_sha256(cfg["checkpoint"]),
        }
    head = final_linear(build_model(cfg["arch"], len(classes), c, (h, w)))
    if f"{head}.weight" not in state:
        raise TeacherError(
            f"the loaded weights have no '{head}.weight' (the classifier of {cfg['arch']}): "
            "set teacher.arch to the architecture they were saved from"
        )
    n_out = state[f"{head}.weight"].shape[0]
    model = build_model(cfg["arch"], n_out, c, (h, w))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise TeacherError(
            f"the loaded weights do not fit teacher.arch '{cfg['arch']}': {str(e)[:400]}; set "
            "teacher.arch to the architecture they were saved from"
        ) from e
    bad = [
        k for k, v in model.state_dict().items() if v.is_floating_point() and not v.isfinite().all()
    ]
    if bad:
        raise TeacherError(
            f"the loaded teacher weights hold non-finite values (first: {bad[:3]}): the file is "
            "corrupt or came from a diverged run; load another checkpoint"
        )
    if fresh_head and not cfg.get("classes_file"):
        return model, {**source, "outputs": n_out, "class_rows": None}
    rows = _class_rows(n_out, classes, cfg.get("classes_file"))
    if rows is not None and not keep_all_outputs:
        state = model.state_dict()
        for k in ("weight", "bias"):
            if f"{head}.{k}" in state:
                state[f"{head}.{k}"] = state[f"{head}.{k}"][rows].clone()
        model = build_model(cfg["arch"], len(classes), c, (h, w))
        model.load_state_dict(state)
    return model.eval(), {**source, "outputs": n_out, "class_rows": rows}


def init_from(model: nn.Module, cfg: dict, classes, chw, mean, std) -> dict:
    """Load the weights of `cfg` (teacher.init plus the teacher's arch) into `model` to train from
    (CDA squeezed ImageNet-21K-P from ImageNet-1K weights): every tensor whose name and shape
    fit; a classifier over another number of classes keeps its fresh initialisation. Returns
    the source record, with the tensors left fresh."""
    loaded, source = load_pretrained(
        cfg, classes, chw, mean, std, config_key="teacher.init", fresh_head=True
    )
    own, theirs = model.state_dict(), loaded.state_dict()
    fits = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    return {**source, "fresh": sorted(set(own) - set(fits))}
