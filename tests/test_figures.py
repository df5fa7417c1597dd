"""Figures a reader can trust: flagged flat classes, the run's own curricula, curve levels."""

import json

import numpy as np
from PIL import Image

from ddflow.distilled import write_distilled
from ddflow.report.figures import (
    crop_boxes,
    crop_schedules,
    grid_columns,
    has_curriculum,
    image_grid,
    near_constant_classes,
    student_curves,
)


def test_a_class_of_flat_images_is_flagged_in_the_grid(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    images[2:4] = 7  # class "b": both images one grey level, with a few specks
    images[2, 0, :3] = 255
    images[4] = 9  # class "c": one flat image but not the other
    labels = np.repeat(np.arange(3), 2)
    classes = ["a", "b", "c"]
    assert near_constant_classes(images, labels, classes) == ["b"]
    write_distilled(tmp_path / "img", tmp_path / "m.json", images, labels, np.tile([0, 1], 3),
                    classes, {"ipc": 2})  # fmt: skip
    flat = image_grid(str(tmp_path / "img"), str(tmp_path / "m.json"), str(tmp_path / "g.png"), "t")
    assert flat == ["b"] and Image.open(tmp_path / "g.png").size[0] > 50


def test_crop_figures_draw_each_curriculum_with_its_own_steps(tmp_path):
    cda = {"iterations": 300, "crop_schedule": "cosine", "milestone": 0.5, "min_scale": 0.25,
           "max_scale": 1.0}  # fmt: skip
    assert has_curriculum(cda) and not has_curriculum({"crop_schedule": "constant"})
    assert not has_curriculum({"kind": "rded"})
    crop_schedules(str(tmp_path / "s.png"), {"cda": cda, "delt": {**cda, "milestone": 1.0}})
    crop_boxes(str(tmp_path / "b.png"), {"cda": cda})
    assert Image.open(tmp_path / "s.png").size[0] > Image.open(tmp_path / "b.png").size[0] / 2


def test_student_curves_with_bands_and_levels(tmp_path):
    paths = []
    for method, base in (("sre2l", 40.0), ("random", 50.0)):
        for seed in range(2):
            curve = [{"epoch": e, "test_top1": base + e + seed} for e in (1, 2, 3)]
            r = {"method": method, "ipc": 10, "student": "convnet", "protocol": "online",
                 "curve": curve, "teacher_top1": 80.0}  # fmt: skip
            paths.append(tmp_path / f"{method}{seed}.json")
            paths[-1].write_text(json.dumps(r))
    student_curves([str(p) for p in paths], str(tmp_path / "c.png"), "students convnet")
    assert Image.open(tmp_path / "c.png").size[0] > 400


def test_delt_grids_run_from_the_longest_to_the_shortest_optimised_image(tmp_path):
    """DELT Figures 6, 9-11: with EarlyLate rounds the manifest records each image's steps."""
    from ddflow.recover.early_late import image_groups, iterations_per_image

    ipc = 20
    per_class = iterations_per_image(image_groups(ipc, 400, 100), 400, 100)  # 400,...,100
    labels = np.repeat(np.arange(2), ipc)
    steps = np.tile(per_class, 2)
    picks, headers = grid_columns(labels, steps, 5)
    assert headers == ["400 it.", "300 it.", "200 it.", "200 it.", "100 it."]  # ranks 0,5,10,14,19
    assert [steps[i] for i in picks[1]] == [400, 300, 200, 200, 100] and set(picks[1]) < set(
        range(20, 40)
    )
    uniform, none = grid_columns(labels, np.full(40, 300), 5)  # SRe2L: IPC order, no headers
    assert none is None and uniform[1].tolist() == [20, 21, 22, 23, 24]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    index = np.tile(np.arange(ipc), 2)
    write_distilled(tmp_path / "img", tmp_path / "m.json", images, labels, index, ["a", "b"],
                    {"ipc": ipc}, iterations=steps)  # fmt: skip
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert [f["iterations"] for f in manifest["files"]] == steps.tolist()
    image_grid(str(tmp_path / "img"), str(tmp_path / "m.json"), str(tmp_path / "g.png"), "t")
    assert Image.open(tmp_path / "g.png").size[0] > 50
