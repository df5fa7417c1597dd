"""CIM: the observer's most confident real images in 2 x 2 mosaics, refined toward the real
images' intermediate features (select/cim.py); no BatchNorm matching."""

from __future__ import annotations

from ddflow.methods.base import Inputs, MethodKind, class_by_class, register


@register
class CIM(MethodKind):
    name = "cim"
    schema = "cim_method"
    stage = "cim"
    version = 1
    code = ("select/cim.py", "select/edc_mosaic.py", "train/dsa.py", "compute.py", "methods/cim.py")
    reads = frozenset({"data", "teacher"})

    def rehearsal(self, method, ipc, classes):
        """As few candidates as the mosaics' cells need; two refinement steps."""
        return {"candidates": 4 * ipc, "iterations": 2}

    def images_needed(self, method, ipc):
        """Each 2 x 2 mosaic cell is a different real image."""
        return 4 * ipc

    def build(self, inputs: Inputs, method: dict, ipc: int):
        import random

        from ddflow.recover.loop import freeze
        from ddflow.recover.shards import batch_seed
        from ddflow.select.cim import FeatureAt, cim_class

        teacher = freeze(inputs.teacher)
        features = FeatureAt(teacher, method["feature_layer"])

        def make(c, images):
            rng = random.Random(batch_seed(inputs.stage_id, c, ipc) ^ method["seed"])
            return cim_class(teacher, inputs.norm, images, c, ipc, method, rng, features)

        try:
            return class_by_class(inputs, "CIM synthesis", make), {}
        finally:
            features.remove()
