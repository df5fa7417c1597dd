"""The random real subset: the baseline every distilled set must beat under the same recipe."""

from __future__ import annotations

from ddflow.methods.base import Inputs, MethodKind, register


@register
class Random(MethodKind):
    name = "random"
    schema = "random_method"
    stage = "random"
    version = 1
    code = ("baselines.py", "select/coreset.py", "methods/random_subset.py")

    def build(self, inputs: Inputs, method: dict, ipc: int):
        from ddflow.baselines import random_subset

        b = inputs.bundle
        idx = random_subset(b.train_y, ipc, method["seed"], b.num_classes)
        return b.train_x[idx], {"source_index": idx.tolist()}
