"""Coreset baselines: real images chosen per class with the teacher, no synthesis.

All three read the teacher's cached features stage (one pass over the training set, shared by
every coreset method and IPC): herding and k-center greedy select on its penultimate features,
EL2N on its error scores. The audits the field runs compare distilled sets with these.
"""

from __future__ import annotations

from ddflow.methods.base import Inputs, MethodKind, register
from ddflow.select import coreset


class Coreset(MethodKind):
    stage = "coreset"
    version = 1
    code = ("select/coreset.py", "methods/coresets.py")
    reads = frozenset({"data", "features"})

    def pick(self, features: dict, rows, method: dict, ipc: int):
        """Chosen positions within one class (`rows`: the class's training indices)."""
        raise NotImplementedError

    def build(self, inputs: Inputs, method: dict, ipc: int):
        b, f = inputs.bundle, inputs.features
        idx = coreset.per_class(
            b.train_y, b.num_classes, ipc, lambda rows: self.pick(f, rows, method, ipc)
        )
        return b.train_x[idx], {"source_index": idx.tolist()}


@register
class Herding(Coreset):
    name, schema = "herding", "herding_method"

    def pick(self, features, rows, method, ipc):
        return coreset.herding(features["features"][rows], ipc)


@register
class KCenter(Coreset):
    name, schema = "kcenter", "kcenter_method"

    def pick(self, features, rows, method, ipc):
        return coreset.k_center_greedy(features["features"][rows], ipc)


@register
class EL2N(Coreset):
    name, schema = "el2n", "el2n_method"

    def pick(self, features, rows, method, ipc):
        return coreset.by_score(features["el2n"][rows], ipc, method["keep"] == "hardest")
