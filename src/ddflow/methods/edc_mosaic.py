"""EDC's ImageNet-1K starts as a set of their own: 2 x 2 mosaics of the real patches a teacher
ensemble is most confident on (select/edc_mosaic.py). EDC recovers from it with `init: set`."""

from __future__ import annotations

from ddflow.methods.base import Inputs, MethodKind, register


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

        import numpy as np

        from ddflow.data.files import take
        from ddflow.progress import Tracker
        from ddflow.recover.shards import batch_seed
        from ddflow.select.edc_mosaic import edc_mosaic_class

        b = inputs.bundle
        tracker = Tracker("EDC mosaics", b.num_classes, "class")
        out = []
        for c in range(b.num_classes):  # one patch pool for every IPC, as the released cache
            rng = random.Random(batch_seed(inputs.stage_id, c, 0) ^ method["seed"])
            x = edc_mosaic_class(inputs.teachers, inputs.norm,
                                 take(b.train_x, np.flatnonzero(b.train_y == c)), c, ipc, method,
                                 rng)  # fmt: skip
            out.append(inputs.norm.to_uint8(x))
            tracker.update(c + 1)
        return np.concatenate(out), {}
