"""CIM: the observer's most confident real images in 2 x 2 mosaics, refined toward the real
images' intermediate features (select/cim.py); no BatchNorm matching."""

from __future__ import annotations

from ddflow.methods.base import Inputs, MethodKind, register


@register
class CIM(MethodKind):
    name = "cim"
    schema = "cim_method"
    stage = "cim"
    version = 1
    code = ("select/cim.py", "train/dsa.py", "compute.py", "methods/cim.py")
    reads = frozenset({"data", "teacher"})

    def rehearsal(self, method, ipc, classes):
        """As few candidates as the mosaics' cells need; two refinement steps."""
        return {"candidates": 4 * ipc, "iterations": 2}

    def build(self, inputs: Inputs, method: dict, ipc: int):
        import random

        import numpy as np

        from ddflow.data.files import take
        from ddflow.progress import Tracker
        from ddflow.recover.loop import freeze
        from ddflow.recover.shards import batch_seed
        from ddflow.select.cim import FeatureAt, cim_class

        b = inputs.bundle
        teacher = freeze(inputs.teacher)
        features = FeatureAt(teacher, method["feature_layer"])
        tracker = Tracker("CIM synthesis", b.num_classes, "class")
        out = []
        try:
            for c in range(b.num_classes):
                rng = random.Random(batch_seed(inputs.stage_id, c, ipc) ^ method["seed"])
                x = cim_class(teacher, inputs.norm, take(b.train_x, np.flatnonzero(b.train_y == c)),
                              c, ipc, method, rng, features)  # fmt: skip
                out.append(inputs.norm.to_uint8(x))
                tracker.update(c + 1)
        finally:
            features.remove()
        return np.concatenate(out), {}
