"""Each application's config rules (validate_config runs APPLICATION_CHECKS in order).

Here rather than beside each application's code: validation runs while Snakemake parses, which
must not import torch, and the applications' modules import it.
"""

from __future__ import annotations

import re

import jsonschema

from ddflow.config import _check_loaded, _fill_defaults, _raise_first, incremental_recipe
from ddflow.errors import ConfigError

# Student keys an incremental run cannot change: they pick the runs, not their recipe.
NOT_PER_APPLICATION = (
    "labels", "label_budget", "seeds", "relabel_seed", "relabel_epochs_per_shard"
)  # fmt: skip


def _check_application(cfg: dict, schema: dict, key: str, stored_why: str) -> dict | None:
    """An application block ({} is on, with every default): defaults filled, its methods known,
    and a label protocol it can use (stored labels fit the whole set only)."""
    block = cfg.get(key)
    if block is None:
        return None
    _fill_defaults(schema["properties"][key], block)
    known = {*cfg["methods"], *cfg["synthesis_members"]}
    unknown = [m for m in block.get("methods", []) if m not in known]
    if unknown:
        raise ConfigError(
            f"config key '{key}.methods': {unknown} are not methods of this config; "
            f"choose from {sorted(known)}"
        )
    if cfg["student"]["labels"] == ["stored"]:
        raise ConfigError(
            f"config key '{key}': {stored_why}; add online, hard or hybrid to student.labels"
        )
    return block


def check_incremental(cfg: dict, schema: dict) -> None:
    """Its student keys change the recipe, not which runs exist; the recipe is a student's."""
    why = "stored labels are relabelled for the whole set, not for each step's classes"
    block = _check_application(cfg, schema, "incremental", why)
    override = (block or {}).get("student") or {}
    fixed = [k for k in override if k in NOT_PER_APPLICATION]
    if fixed:
        raise ConfigError(
            f"config key 'incremental.student': {fixed} choose which runs exist and stay the "
            "student block's; set them there"
        )
    merged = incremental_recipe(cfg["student"], block or {})
    student_schema = {**schema["properties"]["student"], "$defs": schema.get("$defs", {})}
    cls = jsonschema.validators.validator_for(schema)
    _raise_first(cls(student_schema), merged, ["incremental", "student"])


def check_pruning(cfg: dict, schema: dict) -> None:
    """Slimming needs a network of BN-gated conv stacks, from one source."""
    why = "the pruned network learns from the unpruned teacher online"
    if _check_application(cfg, schema, "pruning", why) is None:
        return
    network = cfg["pruning"].get("network")
    key = "pruning.network" if network else "teacher"
    _check_loaded(network, "pruning.network")
    arch = (network or cfg["teacher"])["arch"]
    if not re.fullmatch(r"vgg11_bn_lowres|convnet_d\d|conv\d|torchvision:vgg\d+_bn", arch):
        raise ConfigError(
            f"config key '{key}.arch': slimming prunes BN-gated channels in plain conv-BN "
            f"stacks; it is '{arch}'. Use vgg11_bn_lowres, a convnet_d*, or torchvision:vgg11_bn "
            "(with pretrained: IMAGENET1K_V1 for ImageNet's weights)"
        )


APPLICATION_CHECKS = (check_incremental, check_pruning)
