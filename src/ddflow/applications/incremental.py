"""Class-incremental learning on a distilled set: the SRe2L-CL protocol (GDumb-style).

The classes are split into `steps` groups in one seeded order (SRe2L-CL: numpy seed 0). At each
step a fresh student is trained from scratch on every distilled image of the classes seen so far
(nothing carries over between steps), under the experiment's student recipe and label protocol
(online KD from the teacher over all classes, as SRe2L-CL), and tested on the real test images of
the seen classes only, with the argmax over all classes (applications.md §1.2).
"""

from __future__ import annotations

import numpy as np

from ddflow.data.datasets import DatasetBundle
from ddflow.data.files import take
from ddflow.progress import Tracker


def class_order(num_classes: int, seed: int) -> np.ndarray:
    """The order classes arrive in: numpy's permutation under `seed` (SRe2L-CL's, seed 0)."""
    return np.random.RandomState(seed).permutation(num_classes)


def seen_classes(order: np.ndarray, steps: int) -> list[np.ndarray]:
    """The classes seen after each step: the first k groups of len(order) // steps classes."""
    per = len(order) // steps
    return [np.sort(order[: per * (k + 1)]) for k in range(steps)]


def due_steps(steps: int, every: int) -> list[int]:
    """The 1-based steps that are trained and evaluated: every `every`-th, and the last."""
    return sorted({*range(every, steps + 1, every), steps})


def memory(labels: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The distilled images of the seen classes (all of their IPC images), in set order."""
    return np.flatnonzero(np.isin(labels, seen))


def seen_test(bundle: DatasetBundle, seen: np.ndarray) -> DatasetBundle:
    """The bundle with its test split cut to the seen classes (the model keeps every output)."""
    keep = np.flatnonzero(np.isin(bundle.test_y, seen))
    return DatasetBundle(
        bundle.train_x, bundle.train_y, take(bundle.test_x, keep), bundle.test_y[keep],
        bundle.classes, bundle.mean, bundle.std,
    )  # fmt: skip


def run_incremental(images, labels, bundle, teacher, recipe, seed, device, spec, train) -> dict:
    """Per due step: the classes seen, the images trained on, and the student's test top-1.

    `train(images, teacher, bundle, recipe, seed, device, targets=...)` is the student trainer
    (train/student.py's `train_student`); `recipe['batch_size']` must be resolved for the set.
    """
    order = class_order(bundle.num_classes, spec["order_seed"])
    groups = seen_classes(order, spec["steps"])
    out = []
    tracker = Tracker("incremental", spec["steps"], "step")
    for step in due_steps(spec["steps"], spec["every"]):
        seen = groups[step - 1]
        idx = memory(labels, seen)
        result = train(
            images[idx], teacher, seen_test(bundle, seen), recipe, seed, device, targets=labels[idx]
        )
        out.append(
            {
                "step": step,
                "classes_seen": int(len(seen)),
                "n_images": int(len(idx)),
                "top1": result["top1_last"],
                "curve": result["curve"],
            }
        )
        tracker.update(step, classes_seen=len(seen), top1=result["top1_last"])
    return {"order": order.tolist(), "steps": out}
