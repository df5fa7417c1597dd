"""Method kinds: the registry is the one place a kind is declared; coresets against brute force."""

import itertools
import math

import numpy as np
import pytest
import torch

from ddflow.config import ConfigError, StageIds, load_schema, validate_config
from ddflow.data.pixels import Normalizer
from ddflow.methods import KINDS, Inputs
from ddflow.metrics.diversity import penultimate_features
from ddflow.models import build_model
from ddflow.select.coreset import by_score, el2n, herding, k_center_greedy, per_class
from ddflow.select.ranking import teacher_scores

CPU = torch.device("cpu")


def _cfg(methods):
    return validate_config(
        {
            "dataset": {"name": "d", "source": "mnist-embedded"},
            "teacher": {"arch": "convnet_d3"},
            "student": {"arch": "convnet_d3"},
            "ipc": [2],
            "methods": methods,
        }
    )


def _unit(f):
    return [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in f]


def _dist(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def test_every_kind_has_its_schema_block_and_unknown_kinds_name_the_choices():
    defs = load_schema()["$defs"]
    for name, kind in KINDS.items():
        kind_key = defs[kind.schema]["properties"]["kind"]
        assert kind_key.get("const") == name or name in kind_key["enum"]
    with pytest.raises(ConfigError, match=r"methods\.m\.kind': unknown kind 'herd'.*'herding'"):
        _cfg({"m": {"kind": "herd"}})
    with pytest.raises(ConfigError, match=r"methods\.m\.init': mosaic needs class-major"):
        _cfg({"m": {"kind": "cda", "init": "mosaic"}})
    with pytest.raises(ConfigError, match="keep"):
        _cfg({"m": {"kind": "el2n", "keep": "middle"}})


def test_coreset_ids_follow_the_teacher_features_and_their_keys():
    cfg = _cfg({"h": {"kind": "herding"}, "e": {"kind": "el2n"}, "z": {"kind": "el2n",
                "keep": "easiest"}})  # fmt: skip
    ids = StageIds(cfg)
    assert ids.method_slice("h")["features"] == ids.features
    assert len({ids.method("h"), ids.method("e"), ids.method("z")}) == 3
    assert cfg["methods"]["e"]["keep"] == "hardest"  # Paul et al. keep the hardest
    other = _cfg({"h": {"kind": "herding"}})
    other["teacher"]["epochs"] += 1
    assert StageIds(other).method("h") != ids.method("h")


def _herding_brute(f, k):
    f = _unit(f)
    mu = [sum(col) / len(f) for col in zip(*f)]
    chosen = []
    for step in range(1, k + 1):
        best, best_d = None, math.inf
        for j in range(len(f)):
            if j in chosen:
                continue
            mean = [sum(f[i][d] for i in chosen + [j]) / step for d in range(len(mu))]
            if _dist(mean, mu) < best_d:
                best, best_d = j, _dist(mean, mu)
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_herding_takes_the_greedy_best_mean_at_every_step(seed):
    f = np.random.default_rng(seed).normal(size=(9, 3))
    assert herding(f, 6).tolist() == _herding_brute(f.tolist(), 6)
    assert sorted(herding(f, 9).tolist()) == list(range(9))


def _radius(f, centers):
    return max(min(_dist(p, f[c]) for c in centers) for p in f)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_is_the_greedy_sequence_within_twice_the_best_radius(seed):
    f = np.random.default_rng(seed).normal(size=(10, 2))
    u = _unit(f.tolist())
    mu = [sum(col) / len(u) for col in zip(*u)]
    chosen = [min(range(len(u)), key=lambda j: _dist(u[j], mu))]
    while len(chosen) < 4:
        chosen.append(max(range(len(u)), key=lambda j: min(_dist(u[j], u[c]) for c in chosen)))
    got = k_center_greedy(f, 4).tolist()
    assert got == chosen
    best = min(_radius(u, c) for c in itertools.combinations(range(len(u)), 4))
    assert _radius(u, got) <= 2 * best + 1e-12


def test_el2n_and_score_order_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    s = el2n(probs, np.array([0, 0, 1]))
    assert s == pytest.approx([math.sqrt(0.09 + 0.04 + 0.01), math.sqrt(0.81 + 0.01 + 0.64),
                               math.sqrt(0.25 + 0.25)])  # fmt: skip
    assert by_score(s, 2, hardest=True).tolist() == [1, 2]
    assert by_score(s, 2, hardest=False).tolist() == [0, 2]
    assert by_score(np.array([1.0, 2.0, 2.0]), 1, hardest=True).tolist() == [1]  # first of a tie


def test_per_class_is_class_major_and_each_ipc_nests_in_the_next():
    labels = np.array([2, 1, 2, 2, 1, 0, 1, 2, 0, 0, 0])
    f = np.random.default_rng(3).normal(size=(len(labels), 4))
    for pick in (herding, k_center_greedy):
        small = per_class(labels, 3, 2, lambda idx, pick=pick: pick(f[idx], 2))
        large = per_class(labels, 3, 3, lambda idx, pick=pick: pick(f[idx], 3))
        assert labels[large].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert small.tolist() == [i for n, i in enumerate(large.tolist()) if n % 3 < 2]
    with pytest.raises(ValueError, match="class 1 has 3 training images, fewer than IPC 4"):
        per_class(labels, 3, 4, lambda idx: np.arange(4))


def test_teacher_scores_are_unit_features_and_el2n_of_the_teacher():
    torch.manual_seed(0)
    net = build_model("convnet_d3", 4, 3, (12, 12)).eval()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (21, 12, 12, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 21)
    norm = Normalizer([0.5] * 3, [0.25] * 3, CPU)
    out = teacher_scores(net, x, y, norm, batch_size=8)
    ref = penultimate_features(net, x, norm)
    ref = (ref / ref.norm(dim=1, keepdim=True)).numpy()
    assert out["features"].dtype == np.float16
    np.testing.assert_allclose(out["features"], ref, atol=1e-3)
    probs = net(norm.to_tensor(x)).softmax(1).detach().numpy()
    np.testing.assert_allclose(out["el2n"], el2n(probs, y), rtol=1e-5)
    assert out["labels"] is y


@pytest.mark.parametrize("name", ["herding", "kcenter", "el2n"])
def test_coreset_kinds_select_from_the_features_per_class(name):
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1, 2], 6)
    bundle = type("B", (), {"train_x": np.arange(18)[:, None] * np.ones((1, 2)),
                            "train_y": y, "num_classes": 3})()  # fmt: skip
    feats = {"features": rng.normal(size=(18, 5)), "el2n": rng.random(18)}
    method = _cfg({"m": {"kind": name}})["methods"]["m"]
    images, extra = KINDS[name].build(Inputs("id", None, CPU, (1, 1, 2), bundle, None, None,
                                             feats), method, 2)  # fmt: skip
    pick = {
        "herding": lambda idx: herding(feats["features"][idx], 2),
        "kcenter": lambda idx: k_center_greedy(feats["features"][idx], 2),
        "el2n": lambda idx: np.argsort(-feats["el2n"][idx])[:2],
    }[name]
    expect = []
    for c in range(3):
        idx = np.flatnonzero(y == c)
        expect += idx[pick(idx)].tolist()
    assert extra["source_index"] == expect and images[:, 0].tolist() == expect


def _external(tmp_path, names, per_class=3, size=(8, 8), mode="RGB"):
    from PIL import Image

    root = tmp_path / "released"
    for ci, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            pixel = (ci * 40 + k, 7, 9) if mode == "RGB" else ci * 40 + k
            Image.new(mode, size, pixel).save(root / name / f"{k:03d}.png")
    return root


def _bundle(classes, hw=(8, 8), c=3):
    x = np.zeros((len(classes), *hw, c), np.uint8)
    return type("B", (), {"train_x": x, "train_y": np.arange(len(classes)),
                          "classes": classes, "num_classes": len(classes),
                          "image_shape": (c, *hw)})()  # fmt: skip


def _build_external(root, bundle, ipc, **keys):
    method = _cfg({"m": {"kind": "external", "path": str(root), **keys}})["methods"]["m"]
    return KINDS["external"].build(Inputs("id", None, CPU, bundle.image_shape, bundle), method, ipc)


def test_an_external_set_is_read_in_the_data_class_order_at_the_data_size(tmp_path):
    root = _external(tmp_path, ["cat", "dog"], size=(16, 16))
    images, extra = _build_external(root, _bundle(["cat", "dog"]), 2)
    assert images.shape == (4, 8, 8, 3) and images.dtype == np.uint8
    assert images[:, 0, 0, 0].tolist() == [0, 1, 40, 41]  # class-major, sorted file names
    assert extra["source"]["path"] == str(root)
    gray, _ = _build_external(root, _bundle(["cat", "dog"], c=1), 1)
    assert gray.shape == (2, 8, 8, 1)
    indexed = _external(tmp_path / "i", ["new000", "new001"])
    by_index, _ = _build_external(indexed, _bundle(["cat", "dog"]), 3, class_folders="index")
    assert by_index[:, 0, 0, 0].tolist() == [0, 1, 2, 40, 41, 42]


def test_an_external_set_with_other_classes_or_too_few_images_names_the_folder(tmp_path):
    from ddflow.data.datasets import DataError

    root = _external(tmp_path, ["cat", "cow"])
    with pytest.raises(
        DataError,
        match=r"class map mismatch for class folders of the external "
        r"set '.*released'.*missing \['dog'\], not in the data \['cow'\]",
    ):
        _build_external(root, _bundle(["cat", "dog"]), 2)
    with pytest.raises(DataError, match="has 2 class folders, the data has 3 classes"):
        _build_external(root, _bundle(["a", "b", "c"]), 2, class_folders="index")
    with pytest.raises(DataError, match=r"'.*released/cat' holds 3 images, fewer than IPC 4"):
        _build_external(root, _bundle(["cat", "cow"]), 4)
    with pytest.raises(ConfigError, match=r"methods\.m\.path': folder '.*nowhere' does not exist"):
        _cfg({"m": {"kind": "external", "path": str(tmp_path / "nowhere")}})


def test_each_kind_reads_what_it_uses_and_its_id_follows_only_that():
    def reads(**m):
        return KINDS[m["kind"]].reads_for(_cfg({"m": m})["methods"]["m"])

    assert reads(kind="sre2l") == {"teacher"}  # Gaussian start: no data, no ranking
    assert reads(kind="cda", init="real") == {"teacher", "data", "ranking"}
    assert reads(kind="delt") == {"teacher", "data", "ranking"}  # real init by default
    assert reads(kind="delt", init="mosaic") == {"teacher", "data"}
    assert reads(kind="random") == {"data"} and reads(kind="rded") == {"data", "teacher"}
    assert reads(kind="herding") == {"data", "features"}
    cfg = _cfg({"r": {"kind": "random"}, "d": {"kind": "rded"}, "h": {"kind": "kcenter"},
                "s": {"kind": "sre2l", "init": "real"}, "g": {"kind": "sre2l"}})  # fmt: skip
    cfg["ranker"] = {"arch": "resnet18", "pretrained": "DEFAULT"}
    ids = StageIds(cfg)
    up = {m: {k: v for k, v in ids.method_slice(m).items() if k not in ("method", "v")}
          for m in ("r", "d", "h", "s", "g")}  # fmt: skip
    assert up == {
        "r": {"data": ids.data},
        "d": {"teacher": ids.teacher},
        "h": {"features": ids.features},
        "s": {"teacher": ids.teacher, "ranker": ids.ranker},  # ranked real init
        "g": {"teacher": ids.teacher},  # Gaussian init ignores the ranker
    }


def test_a_kind_is_registered_once():
    from ddflow.methods import register
    from ddflow.methods.coresets import Herding

    class Twice(Herding):
        pass

    with pytest.raises(ValueError, match="^method kind 'herding' registered twice$"):
        register(Twice)
    assert type(KINDS["herding"]) is Herding


def test_score_ties_keep_the_lowest_index_at_any_size():
    scores = np.zeros(40)
    scores[[5, 30]] = 1.0
    assert by_score(scores, 4, hardest=True).tolist() == [5, 30, 0, 1]
    assert by_score(scores, 3, hardest=False).tolist() == [0, 1, 2]
    ties = np.random.default_rng(0).integers(0, 3, 100).astype(float)
    expect = sorted(range(100), key=lambda i: (-ties[i], i))[:10]
    assert by_score(ties, 10, hardest=True).tolist() == expect


def test_an_external_set_at_the_data_size_is_taken_as_is_and_non_square_data_is_refused(tmp_path):
    from PIL import Image

    from ddflow.data.datasets import DataError

    root = tmp_path / "same"
    (root / "a").mkdir(parents=True)
    grad = np.arange(28 * 28).reshape(28, 28)[..., None] * np.ones(3, int) % 251
    Image.fromarray(grad.astype(np.uint8)).save(root / "a" / "0.png")
    images, _ = _build_external(root, _bundle(["a"], hw=(28, 28)), 1)
    assert np.array_equal(images[0], grad)  # no resize at the data's size (28 -> 32 -> 28)
    wide = _external(tmp_path / "w", ["a"], per_class=1, size=(10, 6))
    with pytest.raises(DataError, match=r"is 10x6, the data is 12x8 and not square: resize"):
        _build_external(wide, _bundle(["a"], hw=(8, 12)), 1)


def test_the_random_and_rded_kinds_build_what_their_library_functions_make():
    """random: the seeded per-class subset with its indices; rded: mosaics seeded by the stage
    id, the IPC and methods.<name>.seed (the documented seed its results reproduce from)."""
    from ddflow.baselines import random_subset
    from ddflow.recover.init import mosaic_images
    from ddflow.recover.shards import batch_seed

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (24, 8, 8, 1), dtype=np.uint8)
    y = np.repeat(np.arange(3), 8)
    bundle = type("B", (), {"train_x": x, "train_y": y, "num_classes": 3})()
    method = _cfg({"r": {"kind": "random", "seed": 4}})["methods"]["r"]
    images, extra = KINDS["random"].build(Inputs("id", None, CPU, (1, 8, 8), bundle), method, 2)
    idx = random_subset(y, 2, 4, 3)
    assert extra == {"source_index": idx.tolist()} and np.array_equal(images, x[idx])
    torch.manual_seed(0)
    teacher = build_model("convnet_d3", 3, 1, (8, 8)).eval()
    norm = Normalizer([0.5], [0.25], CPU)
    rded = _cfg({"d": {"kind": "rded", "candidates": 4, "num_crops": 2, "seed": 3}})["methods"]["d"]
    inputs = Inputs("sid", norm, CPU, (1, 8, 8), bundle, teacher)
    images, extra = KINDS["rded"].build(inputs, rded, 2)
    spec = {"mosaic_factor": 1, "mosaic_crops": 2, "mosaic_candidates": 4}
    ref = mosaic_images(teacher, x, y, range(3), 2, spec, norm, batch_seed("sid", 0, 2) ^ 3)
    assert extra == {} and np.array_equal(images, ref)


def test_an_external_kind_names_its_folder_as_an_input(tmp_path):
    method = _cfg({"e": {"kind": "external", "path": str(tmp_path)}})["methods"]["e"]
    assert KINDS["external"].files(method) == {"external": str(tmp_path)}
    assert KINDS["herding"].files(method) == {}
