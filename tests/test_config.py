import pytest
import yaml

from ddflow.config import ConfigError, StageIds, validate_config

from conftest import ROOT, with_key

BASE = {
    "dataset": {"name": "m", "source": "mnist-embedded"},
    "teacher": {"arch": "convnet_d3"},
    "ipc": [2],
    "methods": {"sre2l": {"kind": "sre2l"}},
    "student": {"epochs": 3},
}


def with_change(path: str, value):
    return with_key(BASE, path, value)


def test_defaults_filled_and_random_baseline_added():
    cfg = validate_config(BASE)
    assert cfg["methods"]["sre2l"]["lr"] == 0.25
    assert cfg["methods"]["sre2l"]["first_bn_multiplier"] == 10.0
    assert cfg["methods"]["random"] == {"kind": "random", "seed": 0}
    assert cfg["student"]["temperature"] == 20
    assert cfg["runtime"]["threads"] == 2


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("teacher.epochz", 3, "config key 'teacher': Additional properties"),
        ("teacher.epochs", "ten", "config key 'teacher.epochs': 'ten' is not of type"),
        ("teacher.epochs", 0, "config key 'teacher.epochs': 0 is less than the minimum"),
        ("methods.sre2l.lr", -1, "config key 'methods.sre2l.lr'"),
        ("methods.sre2l.itterations", 5, "config key 'methods.sre2l': Additional properties"),
        ("methods.sre2l.kind", "magic", "config key 'methods.sre2l.kind'"),
        ("student.schedule", "linear", "config key 'student.schedule'"),
        ("dataset.source", "cifar10", "config key 'dataset.root'"),
        (
            "student.batch_size",
            {50: 100},
            r"config key 'student.batch_size': no batch size for IPC \[2\]",
        ),
        ("student.batch_size", {"ten": 100}, "config key 'student.batch_size'"),
        ("teacher.min_scale", 0.08, "config key 'teacher.min_scale'.*crop_padding: 0"),
    ],
)
def test_bad_config_names_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate_config(with_change(path, value))


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError, match="allowed keys: .*'epochs'"):
        validate_config(with_change("teacher.epochz", 3))


def test_reordered_keys_give_same_ids():
    a = StageIds(validate_config(BASE))
    reordered = {k: BASE[k] for k in reversed(list(BASE))}
    reordered["methods"] = {"sre2l": {"kind": "sre2l"}}
    b = StageIds(validate_config(reordered))
    assert (a.data, a.teacher, a.students, a.method("sre2l")) == (
        b.data,
        b.teacher,
        b.students,
        b.method("sre2l"),
    )


def test_ids_change_only_downstream_of_the_change():
    base = StageIds(validate_config(BASE))
    student = StageIds(validate_config(with_change("student.lr", 0.002)))
    assert (student.data, student.teacher, student.method("sre2l")) == (
        base.data,
        base.teacher,
        base.method("sre2l"),
    )
    assert student.students != base.students
    method = StageIds(validate_config(with_change("methods.sre2l.r_bn", 0.1)))
    assert (method.teacher, method.students) == (base.teacher, base.students)
    assert method.method("sre2l") != base.method("sre2l")
    assert method.method("random") == base.method("random")  # random does not use the teacher
    teacher = StageIds(validate_config(with_change("teacher.epochs", 9)))
    assert teacher.data == base.data
    assert teacher.teacher != base.teacher and teacher.students != base.students
    assert teacher.method("sre2l") != base.method("sre2l")


def test_layout_and_runtime_knobs_do_not_change_ids():
    base = StageIds(validate_config(BASE))
    for path, value in [
        ("methods.sre2l.ipc_per_shard", 3),
        ("runtime.threads", 8),
        ("runtime.device", "cpu"),
        ("student.seeds", [0, 1, 2]),
        ("ipc", [2, 4]),
    ]:
        other = StageIds(validate_config(with_change(path, value)))
        assert (other.teacher, other.students, other.method("sre2l")) == (
            base.teacher,
            base.students,
            base.method("sre2l"),
        ), path


def test_shipped_configs_validate():
    for path in [ROOT / "config" / "config.yaml", ROOT / "tests" / "data" / "tiny.yaml"]:
        validate_config(yaml.safe_load(path.read_text()))


def test_student_batch_size_per_ipc():
    from ddflow.train.student import batch_size_for

    cfg = validate_config({**with_change("student.batch_size", {2: 20, 10: 100}), "ipc": [2, 10]})
    assert cfg["student"]["batch_size"] == {"2": 20, "10": 100}  # YAML's int keys, normalized
    assert [batch_size_for(cfg["student"]["batch_size"], i) for i in (2, 10)] == [20, 100]
    assert batch_size_for(50, 10) == 50
    # snakemake --config 'student={batch_size: {2: 20}}' hands the numbers over as strings
    cfg = validate_config(with_change("student.batch_size", {"2": "20"}))
    assert cfg["student"]["batch_size"] == {"2": 20}


def test_a_relabel_model_has_its_own_student_and_relabel_ids_and_one_source():
    from ddflow.config import StageIds

    base = {"dataset": {"name": "m", "source": "mnist-embedded"}, "teacher": {}, "ipc": [2],
            "methods": {"s": {"kind": "sre2l"}}}  # fmt: skip
    plain = validate_config({**base, "student": {"labels": ["online", "stored"]}})
    labeler = {"arch": "convnet_d3", "checkpoint": "r.pt"}
    other = validate_config(
        {**base, "student": {"labels": ["online", "stored"], "relabel_model": labeler}}
    )
    a, b = StageIds(plain), StageIds(other)
    assert a.students.keys() == b.students.keys()
    assert all(a.students[p] != b.students[p] for p in a.students)
    assert a.relabel("s", 2) != b.relabel("s", 2) and a.method("s") == b.method("s")
    with pytest.raises(ConfigError, match="'student.relabel_model': set one of"):
        validate_config({**base, "student": {"relabel_model": {"arch": "convnet_d3"}}})
