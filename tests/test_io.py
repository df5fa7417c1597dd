import pytest

from ddflow.io import atomic_path, load_checkpoint, read_json, save_checkpoint, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_folder_write_keeps_the_old_folder(tmp_path):
    target = tmp_path / "images"
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.png").write_text("done")
    with pytest.raises(RuntimeError), atomic_path(target, is_dir=True) as tmp:
        (tmp / "b.png").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
    assert sorted(p.name for p in target.iterdir()) == [".ddflow-made", "a.png"]


def test_json_and_checkpoint_roundtrip(tmp_path):
    import torch

    write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert read_json(tmp_path / "a.json") == {"a": [1, 2], "b": 1}
    save_checkpoint(tmp_path / "m.pt", {"w": torch.ones(2)}, {"arch": "x", "classes": ["a"]})
    state, meta = load_checkpoint(tmp_path / "m.pt")  # weights_only=True inside
    assert torch.equal(state["w"], torch.ones(2)) and meta["classes"] == ["a"]


def test_provenance_names_versions_without_importing_timm_or_torchvision():
    """Every job writes provenance; importing timm and torchvision for their versions cost each
    job 1.5 s and 2 s. torchvision's string keeps its CUDA tag, which the metadata drops."""
    import subprocess
    import sys

    code = ("import sys, importlib.metadata as m; from ddflow.io import provenance; "
            "p = provenance('cpu'); assert 'timm' not in sys.modules, 'timm imported'; "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'; "
            "assert p['timm'] == m.version('timm'); import timm, torchvision; "
            "assert p['timm'] == timm.__version__, p['timm']; "
            "assert p['torchvision'] == torchvision.__version__, p['torchvision']")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
