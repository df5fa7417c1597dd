"""Independent references for numbers that reach a table: each recomputed here another way."""

import json

import numpy as np
import pytest
import torch

from ddflow.baselines import random_subset
from ddflow.data.pixels import Normalizer
from ddflow.recover.init import real_init
from ddflow.report.tables import summarize


def _write_run(path, **fields) -> str:
    """One student run's result file, as the student rule writes it (the fields a table reads)."""
    record = {
        "dataset": "d", "ipc": 10, "student": "s", "protocol": "online", "teacher_top1": 60.0,
        **fields,
    }  # fmt: skip
    path.write_text(json.dumps(record))
    return str(path)


def test_the_random_subset_is_ipc_distinct_images_of_each_class_and_nested_over_ipc():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(5), 30))
    small, large = random_subset(labels, 3, 7, 5), random_subset(labels, 10, 7, 5)
    for picks, ipc in ((small, 3), (large, 10)):
        assert len(set(picks.tolist())) == len(picks) == 5 * ipc
        assert (labels[picks] == np.repeat(np.arange(5), ipc)).all()  # class-major
    assert (large.reshape(5, 10)[:, :3] == small.reshape(5, 3)).all()  # IPC 3 is a prefix
    assert not np.array_equal(random_subset(labels, 3, 8, 5), small)  # the seed matters
    # uniform over a class: across seeds every image of class 0 is drawn about equally often
    counts = np.zeros(len(labels))
    for seed in range(600):
        np.add.at(counts, random_subset(labels, 3, seed, 5)[:3], 1)
    drawn = counts[labels == 0]
    assert drawn.min() > 0.5 * drawn.mean() and drawn.max() < 1.5 * drawn.mean()


def test_real_init_of_a_shard_not_starting_at_class_zero_takes_that_shards_classes():
    labels = np.repeat(np.arange(6), 4)
    images = np.repeat(np.arange(24, dtype=np.uint8), 4).reshape(24, 2, 2, 1)  # image i == i
    scores = np.arange(24, dtype=np.float64)[::-1].copy()  # lower index = higher score
    norm = Normalizer([0.0], [1.0 / 255])
    x = real_init(images, labels, scores, range(3, 5), 2, "highest", norm)
    picked = x[:, 0, 0, 0].round().long().tolist()
    # class 3 holds images 12..15 and class 4 holds 16..19; highest scores first
    assert picked == [12, 13, 16, 17]
    last = real_init(images, labels, scores, range(4, 6), 2, "lowest", norm)  # ends at the last
    assert last[:, 0, 0, 0].round().long().tolist() == [19, 18, 23, 22]


def test_the_summary_is_mean_and_sample_std_of_the_per_seed_results(tmp_path):
    rows = [("sre2l", "sre2l", 41.0), ("sre2l", "sre2l", 44.5), ("sre2l", "sre2l", 43.0)]
    rows += [("random", "random", 50.0), ("random", "random", 52.0)]
    paths = [
        _write_run(tmp_path / f"{i}.json", method=m, kind=k, student="convnet_d3", seed=i,
                   top1_last=t, top1_best=t + 1)
        for i, (m, k, t) in enumerate(rows)
    ]  # fmt: skip
    table = summarize(paths).set_index("method")
    seeds = [41.0, 44.5, 43.0]
    assert table.loc["sre2l", "top1_last_mean"] == pytest.approx(np.mean(seeds), abs=0.005)
    assert table.loc["sre2l", "top1_last_std"] == pytest.approx(np.std(seeds, ddof=1), abs=0.005)
    assert table.loc["sre2l", "seeds"] == 3
    assert table.loc["sre2l", "top1_best_mean"] == pytest.approx(np.mean(seeds) + 1, abs=0.005)
    assert table.loc["sre2l", "random_top1_last_mean"] == 51.0  # the random subset's mean


def test_kd_loss_by_an_independent_formula():
    """KL(p_t || p_s) at temperature T, written out elementwise, batch-mean."""
    from ddflow.labels.soft import kd_loss

    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[0.5, 2.5, 0.0], [1.0, 0.0, 2.0]])
    T = 2.0
    total = 0.0
    for i in range(2):
        zs = [float(v) / T for v in s[i]]
        zt = [float(v) / T for v in t[i]]
        ls = [z - np.log(sum(np.exp(zs))) for z in zs]
        pt = [np.exp(z) / sum(np.exp(zt)) for z in zt]
        total += sum(p * (np.log(p) - q) for p, q in zip(pt, ls))
    assert kd_loss(s, t, T).item() == pytest.approx(total / 2, rel=1e-5)


def _tiny_bundle(n_per_class=6, size=12):
    from ddflow.data.datasets import DatasetBundle

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), n_per_class)
    x = (rng.integers(0, 60, (len(y), size, size, 1)) + 40 * y[:, None, None, None]).astype(
        np.uint8
    )
    return DatasetBundle(x, y, x[::2], y[::2], ["a", "b", "c", "d"], [0.4], [0.3])


STUDENT_CHANGES = {
    "epochs": 3,
    "batch_size": 4,
    "lr": 0.01,
    "weight_decay": 0.5,
    "no_decay_bn_bias": False,
    "schedule": "cosine",
    "temperature": 2,
    "t2_factor": True,
    "min_scale": 0.6,
    "max_scale": 0.7,
    "hflip": False,
    "cutmix": 0.0,
    "randaugment": "rand-m9-n2-mstd0.5",
}


@pytest.mark.parametrize("key", sorted(STUDENT_CHANGES))
def test_every_student_key_reaches_the_training(key):
    """Changing any recipe key changes the student's training curve (no key is dropped)."""
    from ddflow.config import student_protocols, validate_config
    from ddflow.models import build_model
    from ddflow.train.student import train_student

    base = {"arch": "convnet_d3", "epochs": 2, "batch_size": 8, "eval_every": 1, "cutmix": 1.0}
    cfgs = [
        validate_config(
            {
                "dataset": {"name": "d", "source": "mnist-embedded"},
                "teacher": {"arch": "convnet_d3"},
                "student": student,
                "ipc": [1],
                "methods": {"random": {"kind": "random"}},
            }
        )["student"]
        for student in (base, {**base, key: STUDENT_CHANGES[key]})
    ]
    cfgs = [student_protocols(c)["online"] for c in cfgs]
    assert cfgs[0][key] != cfgs[1][key]
    bundle = _tiny_bundle()
    teacher = build_model("convnet_d3", 4, 1, (12, 12)).eval()
    curves = [
        train_student(bundle.train_x[:12], teacher, bundle, c, 0, torch.device("cpu"))["curve"]
        for c in cfgs
    ]
    assert curves[0] != curves[1]


TEACHER_CHANGES = {
    "epochs": 2,
    "batch_size": 6,
    "lr": 0.2,
    "momentum": 0.5,
    "weight_decay": 0.05,
    "warmup_epochs": 1,
    "crop_padding": 0,
    "hflip": True,
    "seed": 3,
    "min_scale": 0.3,
}


@pytest.mark.parametrize("key", sorted(TEACHER_CHANGES))
def test_every_teacher_key_reaches_the_training(key):
    from ddflow.config import validate_config
    from ddflow.train.teacher import train_teacher

    base = {"arch": "convnet_d3", "epochs": 1, "batch_size": 8, "crop_padding": 2}
    changed = {**base, key: TEACHER_CHANGES[key]}
    if key == "min_scale":
        changed["crop_padding"] = 0  # random-resized crops replace the padded ones
    curves = []
    for teacher in (base, changed):
        cfg = validate_config(
            {
                "dataset": {"name": "d", "source": "mnist-embedded"},
                "teacher": teacher,
                "student": {"arch": "convnet_d3"},
                "ipc": [1],
                "methods": {"random": {"kind": "random"}},
            }
        )["teacher"]
        _, metrics = train_teacher(_tiny_bundle(), cfg, torch.device("cpu"))
        curves.append(metrics["curve"])
    assert curves[0] != curves[1]


def test_centroid_cosine_by_hand():
    from ddflow.metrics.diversity import centroid_cosine

    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [3.0, 0.0], [3.0, 0.0]])
    labels = np.array([0, 0, 0, 1, 1])
    # class 0: centroid (1, 1); cosines 1/sqrt2, 1/sqrt2, 1; class 1: identical features -> 1
    expected0 = (2 / np.sqrt(2) + 1) / 3
    out = centroid_cosine(f, labels)
    assert out["per_class"][0] == pytest.approx(expected0, rel=1e-6)
    assert out["per_class"][1] == pytest.approx(1.0, rel=1e-6)
    assert out["mean_cosine_to_centroid"] == pytest.approx((expected0 + 1) / 2, rel=1e-6)


def test_penultimate_features_are_the_classifier_input():
    from ddflow.metrics.diversity import penultimate_features

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    images = np.arange(8, dtype=np.uint8).reshape(2, 2, 2, 1)
    norm = Normalizer([0.0], [1.0])
    feats = penultimate_features(model, images, norm, batch_size=1)
    expected = model[1](model[0](norm.to_tensor(images)))
    torch.testing.assert_close(feats, expected)


def test_a_class_with_exactly_ipc_images_gives_them_all():
    labels = np.repeat(np.arange(3), 4)
    picks = random_subset(labels, 4, 0, 3)
    assert sorted(picks.tolist()) == list(range(12))
    with pytest.raises(ValueError, match="config key 'ipc': class 0 has 4 training images"):
        random_subset(labels, 5, 0, 3)


def test_an_unknown_crop_schedule_is_named():
    from ddflow.recover.schedules import crop_scale_bounds

    with pytest.raises(ValueError, match="unknown crop schedule 'zigzag'"):
        crop_scale_bounds(0, 10, "zigzag", 1.0, 0.08, 1.0)


def _runs(tmp_path, rows):
    return [
        _write_run(tmp_path / f"r{i}.json", method=m, kind=k, ipc=ipc, seed=i, top1_last=t,
                   top1_best=t)
        for i, (m, k, ipc, t) in enumerate(rows)
    ]  # fmt: skip


def test_the_summary_is_sorted_rounded_and_honest_about_single_seeds(tmp_path):
    paths = _runs(
        tmp_path,
        [("sre2l", "sre2l", 50, 41.23456), ("cda", "cda", 10, 40.0), ("cda", "cda", 10, 42.0)],
    )
    table = summarize(paths)
    assert list(zip(table.method, table.ipc)) == [("cda", 10), ("sre2l", 50)]  # sorted
    sre2l = table.set_index("method").loc["sre2l"]
    assert sre2l["top1_last_mean"] == 41.23  # two decimals
    assert sre2l["top1_last_std"] == 0.0  # one seed: no spread, not NaN
    assert np.isnan(sre2l["random_top1_last_mean"])  # no random subset run: missing, not 0
    assert table["random_top1_last_mean"].dtype == np.float64
    assert (table["teacher_top1"] == 60.0).all()  # the teacher's accuracy rides along


def test_the_table_writers_print_what_the_runs_hold(tmp_path):
    from ddflow.report.tables import (
        write_cost_table,
        write_diversity_table,
        write_sweep_table,
        write_tables,
    )

    def run(i, method, top1, variant=None, wall=10.0, rss=100.0, kind="cda"):
        return _write_run(
            tmp_path / f"w{i}.json", method=method, kind=kind, seed=i, top1_last=top1,
            top1_best=top1 + 1, variant=variant or {},
            distill_cost={"recover_wall_s": 5.0, "recover_image_iterations": 300},
            distilled_image_bytes=1234,
            labels={"protocol": "online", "teacher_at_training": True, "teacher_bytes": 7},
            cost={"wall_s": wall, "peak_rss_mb": rss, "device": "cpu"},
        )  # fmt: skip

    a = [run(0, "s__m_0p5", 40.0, {"m": 0.5}), run(1, "s__m_0p5", 42.0, {"m": 0.5}, 20.0, 300.0)]
    b = [run(2, "s__m_1p0", 50.0, {"m": 1.0})]
    base = [run(3, "random", 45.0, kind="random")]
    table = write_tables(a + b + base, tmp_path / "s.csv", tmp_path / "s.md")
    md = (tmp_path / "s.md").read_text()
    assert "| 41.00 ± 1.41 " in md and "| 50.00 ± 0.00 " in md  # mean ± sample std
    assert (tmp_path / "s.csv").read_text().splitlines()[0].startswith("dataset,method,kind")
    assert len(table) == 3
    sweep = write_sweep_table(a + b, base, tmp_path / "w.csv", tmp_path / "w.md")
    assert list(sweep["m"]) == [0.5, 1.0] and list(sweep["top1_last_mean"]) == [41.0, 50.0]
    assert list(sweep["random_top1_last_mean"]) == [45.0, 45.0]
    assert "random" not in set(sweep["method"])

    cost = write_cost_table(
        a + b, _teacher_metrics(tmp_path), tmp_path / "c.csv", tmp_path / "c.md"
    )
    row = cost.set_index("method").loc["s__m_0p5"]
    assert (row["student_wall_s"], row["student_peak_rss_mb"]) == (15.0, 300.0)  # mean, max
    assert (row["image_iterations"], row["teacher_bytes"], row["label_bytes"]) == (300, 7, 0)
    assert row["teacher_at_training"] == "yes"
    assert "teacher, shared by all: 33 s on cpu" in (tmp_path / "c.md").read_text()
    # two budgets of the stored protocol are two rows, each with its own label bytes
    stored = [
        _write_run(
            tmp_path / f"b{i}.json",
            method="s",
            kind="sre2l",
            seed=0,
            top1_last=40.0,
            top1_best=41.0,
            protocol=name,
            distill_cost={},
            distilled_image_bytes=1,
            labels={"protocol": "stored", "teacher_at_training": False, "label_bytes": nbytes},
            cost={"wall_s": 1.0, "peak_rss_mb": 1.0, "device": "cpu"},
        )  # fmt: skip
        for i, (name, nbytes) in enumerate([("stored", 900), ("stored-top2", 90)])
    ]
    budgets = write_cost_table(stored, _teacher_metrics(tmp_path), tmp_path / "d.csv",
                               tmp_path / "d.md").set_index("protocol")  # fmt: skip
    assert budgets["label_bytes"].to_dict() == {"stored": 900, "stored-top2": 90}
    assert set(budgets["teacher_at_training"]) == {"no"}
    # a set without recovery or relabel cost (distill_cost {}) and no teacher: zeros, not gaps
    assert (budgets[["recover_wall_s", "relabel_wall_s", "image_iterations", "teacher_bytes"]]
            == 0).all().all()  # fmt: skip
    assert budgets["recover_wall_s"].dtype == np.float64
    assert (row["recover_wall_s"], row["relabel_wall_s"]) == (5.0, 0.0)
    timed = [
        _write_run(
            tmp_path / f"t{i}.json", method=m, kind="cda", seed=0, top1_last=1.0, top1_best=1.0,
            distill_cost={"recover_wall_s": 12.3456, "relabel_wall_s": 2.5,
                          "recover_image_iterations": 7, "recover_peak_rss_mb": 900.0,
                          **({"recover_peak_gpu_mb": 300.0} if m == "zz" else {})},
            distilled_image_bytes=1, labels={"protocol": "online", "teacher_at_training": True},
            cost={"wall_s": 1.0, "peak_rss_mb": 1.0, "device": "cpu"},
        )
        for i, m in enumerate(["zz", "aa"])
    ]  # fmt: skip
    ordered = write_cost_table(timed, _teacher_metrics(tmp_path), tmp_path / "e.csv",
                               tmp_path / "e.md")  # fmt: skip
    assert list(ordered["method"]) == ["aa", "zz"]  # sorted by method
    first = ordered.iloc[0]
    assert (first["recover_wall_s"], first["relabel_wall_s"]) == (12.35, 2.5)  # two decimals
    assert (first["image_iterations"], first["teacher_bytes"]) == (7, 0)
    # the recovery's peak: GPU memory where recorded (CUDA), else the process's RSS
    assert list(ordered["recover_peak_mb"]) == [900.0, 300.0]
    md = (tmp_path / "e.md").read_text()
    assert md.startswith("Cost per method and label protocol (teacher, shared by all: 33 s on "
                         "cpu, peak RSS 500 MB). Recovery time is summed over shards, its peak "
                         "memory is the largest shard's (GPU memory on CUDA, else the process's "
                         "RSS); label "
                         "bytes are what a student reads beside the images (stored logits and "
                         "their views at the budget, or class indices); a protocol that runs the "
                         "teacher at training time needs its weights instead. Student time is "
                         "the mean over seeds.\n\n")  # fmt: skip
    assert (tmp_path / "e.csv").read_text().startswith("method,ipc,protocol,recover_wall_s")
    assert md.split("\n\n")[1].startswith("| method ")  # no index column in markdown

    div = []
    for i, (m, per_class) in enumerate([("x", {"0": 0.9, "1": 0.7}), ("y", {"0": 0.5})]):
        p = tmp_path / f"d{i}.json"
        mean = float(np.mean(list(per_class.values())))
        p.write_text(
            json.dumps(
                {
                    "dataset": "d",
                    "method": m,
                    "ipc": 10,
                    "per_class": per_class,
                    "mean_cosine_to_centroid": mean,
                }  # fmt: skip
            )
        )
        div.append(str(p))
    d = write_diversity_table(div, tmp_path / "v.csv", tmp_path / "v.md")
    assert list(d["method"]) == ["y", "x"]  # most diverse first
    assert (d.iloc[1]["min_class"], d.iloc[1]["max_class"]) == (0.7, 0.9)
    assert list(d.columns[:3]) == ["dataset", "method", "ipc"] and d.iloc[0]["dataset"] == "d"
    caption = (
        "Mean cosine similarity of teacher penultimate features to their class centroid "
        "(lower = more diverse)."
    )
    assert (tmp_path / "v.md").read_text().startswith(caption + "\n\n| dataset")
    third = tmp_path / "d9.json"
    record = {"dataset": "d", "method": "z", "ipc": 10, "per_class": {"0": 0.123456},
              "mean_cosine_to_centroid": 0.123456}  # fmt: skip
    third.write_text(json.dumps(record))
    rounded = write_diversity_table([third], tmp_path / "r.csv", tmp_path / "r.md")
    assert rounded.iloc[0]["mean_cosine_to_centroid"] == 0.1235  # four decimals
    seen = {"classifier": "teacher", "top1_global": 97.5, "top1_crops": 61.25, "crops": 10}
    third.write_text(json.dumps({**record, "recognition": seen}))
    recognised = write_diversity_table([third], tmp_path / "g.csv", tmp_path / "g.md")
    assert recognised.iloc[0][["top1_global", "top1_crops"]].tolist() == [97.5, 61.25]
    assert "Recognition (CDA Table 9)" in (tmp_path / "g.md").read_text()


def _teacher_metrics(tmp_path):
    p = tmp_path / "teacher.json"
    p.write_text(json.dumps({"cost": {"wall_s": 33.0, "peak_rss_mb": 500.0, "device": "cpu"}}))
    return str(p)


def test_gain_over_random_and_hard_share_of_soft_gain_by_hand(tmp_path):
    """Per protocol: gain = method - random under the same protocol; the hard share divides the
    hard gain by the online gain, and is blank for random, and for a soft gain not above 0."""
    from ddflow.report.tables import protocol_grid, write_protocol_table, write_tables

    runs = [  # (method, kind, protocol, top1 per seed)
        ("m", "cda", "hard", [30.0, 32.0]), ("m", "cda", "online", [52.0, 54.0]),
        ("m", "cda", "stored-top2", [44.0]), ("a", "sre2l", "hard", [27.0]),
        ("a", "sre2l", "online", [49.0]), ("random", "random", "hard", [29.0, 29.0]),
        ("random", "random", "online", [50.0]), ("random", "random", "stored-top2", [40.0]),
    ]  # fmt: skip
    paths = [
        _write_run(tmp_path / f"{m}-{p}-{i}.json", method=m, kind=k, protocol=p, seed=i,
                   top1_last=t, top1_best=t)
        for m, k, p, tops in runs for i, t in enumerate(tops)
    ]  # fmt: skip
    table = summarize(paths).set_index(["method", "protocol"])
    assert table.loc[("m", "hard"), "gain_over_random"] == 2.0  # 31 - 29
    assert table.loc[("m", "online"), "gain_over_random"] == 3.0  # 53 - 50
    assert table.loc[("m", "stored-top2"), "gain_over_random"] == 4.0  # 44 - 40
    assert table.loc[("m", "hard"), "hard_share_of_soft_gain"] == pytest.approx(0.67)  # 2/3
    assert table.loc[("m", "online"), "hard_share_of_soft_gain"] == pytest.approx(0.67)
    assert table.loc[("a", "online"), "gain_over_random"] == -1.0
    assert np.isnan(table.loc[("a", "hard"), "hard_share_of_soft_gain"])  # soft gain < 0
    assert table.loc[("random", "hard"), "gain_over_random"] == 0.0
    assert table["hard_share_of_soft_gain"].loc["random"].isna().all()

    grid = protocol_grid(summarize(paths))
    assert list(grid.columns) == ["hard", "online", "stored-top2", "hard share of soft gain"]
    assert list(grid.index) == ["m (IPC 10)", "random (IPC 10)", "a (IPC 10)"]  # by kind
    assert grid.loc["m (IPC 10)"].tolist() == [
        "31.00 ± 1.41 (+2.00)", "53.00 ± 1.41 (+3.00)", "44.00 ± 0.00 (+4.00)", "0.67"
    ]  # fmt: skip
    assert grid.loc["random (IPC 10)"].tolist() == [
        "29.00 ± 0.00", "50.00 ± 0.00", "40.00 ± 0.00", ""
    ]  # fmt: skip
    assert grid.loc["a (IPC 10)"].tolist() == ["27.00 ± 0.00 (-2.00)", "49.00 ± 0.00 (-1.00)",
                                               "", ""]  # fmt: skip

    out = write_protocol_table(paths, tmp_path / "p.csv", tmp_path / "p.md")
    csv_rows = (tmp_path / "p.csv").read_text().splitlines()
    assert csv_rows[0].split(",")[:6] == ["dataset", "method", "kind", "ipc", "student", "protocol"]
    assert len(csv_rows) == 1 + len(out) == 1 + 8  # no index column, one row per cell
    md = (tmp_path / "p.md").read_text()
    assert md.startswith("Top-1 (%) at the last epoch, mean ± std over seeds, per label protocol")
    assert "| m (IPC 10)      | 31.00 ± 1.41 (+2.00) |" in md
    assert "hard share of soft gain" in md.splitlines()[2]

    write_tables(paths, tmp_path / "s.csv", tmp_path / "s.md")
    header = (tmp_path / "s.md").read_text().splitlines()[2]
    assert header.split("|")[1].strip() == "dataset"  # no index column in markdown either
    assert header.rstrip(" |").endswith("hard_share_of_soft_gain")
    only_online = [p for p in paths if "-online-" in p]
    write_tables(only_online, tmp_path / "o.csv", tmp_path / "o.md")
    assert "hard_share" not in (tmp_path / "o.md").read_text()  # no hard runs: no column
    from ddflow.report.tables import CAPTION

    # one set, no validation split: the caption explains only the columns shown
    head = f"{CAPTION['head']} {CAPTION['tail']}"
    assert (tmp_path / "o.md").read_text().startswith(head + "\n\n")


def test_param_groups_carry_the_configured_weight_decay():
    from ddflow.train.common import param_groups

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    [group] = param_groups(net, 0.3, False)
    assert group["weight_decay"] == 0.3 and len(group["params"]) == 4
    decay, no_decay = param_groups(net, 0.3, True)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.3, 0.0)


def test_mosaics_are_cut_from_their_own_class_and_follow_the_seed():
    """RDED/DELT mosaics: a class's mosaic holds only that class's pixels; the same seed gives
    the same images, another seed other ones."""
    from ddflow.recover.init import mosaic_images

    labels = np.repeat(np.arange(3), 6)
    images = np.zeros((18, 8, 8, 1), np.uint8)
    for i, c in enumerate(labels):
        images[i] = 60 * c + 10 + i % 6  # class c's pixels lie in [60c + 10, 60c + 15]
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
        torch.nn.LazyLinear(3),
    )  # fmt: skip
    teacher(torch.zeros(1, 1, 8, 8))
    teacher.eval()
    norm = Normalizer([0.5], [0.25], torch.device("cpu"))
    spec = {"mosaic_factor": 2, "mosaic_crops": 2, "mosaic_candidates": 4}
    out = mosaic_images(teacher, images, labels, range(3), 1, spec, norm, seed=7)
    assert out.shape == (3, 8, 8, 1)
    for c in range(3):
        assert out[c].min() >= 60 * c + 10 - 1 and out[c].max() <= 60 * c + 15 + 1, c
        assert len(np.unique(out[c])) > 1  # crops of several images
    again = mosaic_images(teacher, images, labels, range(3), 1, spec, norm, seed=7)
    other = mosaic_images(teacher, images, labels, range(3), 1, spec, norm, seed=8)
    assert np.array_equal(out, again) and not np.array_equal(out, other)
