"""RDED: mosaics of teacher-selected real crops, no optimisation."""

from __future__ import annotations

from ddflow.methods.base import Inputs, MethodKind, register


@register
class RDED(MethodKind):
    name = "rded"
    schema = "rded_method"
    stage = "rded"
    version = 1
    code = ("recover/init.py", "select/mosaic.py", "select/ranking.py", "select/coreset.py",
            "methods/rded.py")  # fmt: skip
    reads = frozenset({"data", "teacher"})

    def rehearsal(self, method, ipc, classes):
        """As few candidates as the mosaics' cells need, two crops each."""
        return {"candidates": ipc * method.get("factor", 1) ** 2, "num_crops": 2}

    def images_needed(self, method, ipc):
        """Each mosaic cell is the best crop of a different real image."""
        return ipc * method.get("factor", 1) ** 2

    def build(self, inputs: Inputs, method: dict, ipc: int):
        from ddflow.recover.init import mosaic_images
        from ddflow.recover.shards import batch_seed

        b = inputs.bundle
        spec = {
            "mosaic_factor": method["factor"],
            "mosaic_crops": method["num_crops"],
            "mosaic_candidates": method["candidates"],
        }
        seed = batch_seed(inputs.stage_id, 0, ipc) ^ method["seed"]
        images = mosaic_images(
            inputs.teacher, b.train_x, b.train_y, range(b.num_classes), ipc, spec, inputs.norm, seed
        )
        return images, {}
