"""EDC's ImageNet-1K starts as a set of their own: 2 x 2 mosaics of the real patches a teacher
ensemble is most confident on (select/edc_mosaic.py). EDC recovers from it with `init: set`."""

from __future__ import annotations

from ddflow.methods.base import Inputs, MethodKind, class_by_class, register


@register
class EDCMosaic(MethodKind):
    name = "edc_mosaic"
    schema = "edc_mosaic_method"
    stage = "edc_mosaic"
    version = 1
    code = ("select/edc_mosaic.py", "recover/augment.py", "compute.py", "methods/edc_mosaic.py")
    reads = frozenset({"data", "teachers"})

    def upstream(self, ids, method):
        return {"teachers": [ids.teachers[n] for n in method["teachers"]]}

    def rehearsal(self, method, ipc, classes):
        """One chunk of four images and as many draws as the mosaics' cells need."""
        return {"candidates": 4, "chunk": 4, "draws": ipc}

    def build(self, inputs: Inputs, method: dict, ipc: int):
        import random

        from ddflow.recover.shards import batch_seed
        from ddflow.select.edc_mosaic import edc_mosaic_class

        def make(c, images):  # one patch pool for every IPC, as the released cache
            rng = random.Random(batch_seed(inputs.stage_id, c, 0) ^ method["seed"])
            return edc_mosaic_class(inputs.teachers, inputs.norm, images, c, ipc, method, rng)

        return class_by_class(inputs, "EDC mosaics", make), {}
