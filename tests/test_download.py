"""dataset.download: CIFAR fetched through torchvision when missing; offline, a clear error."""

import urllib.error
import urllib.request

import pytest

from ddflow.config import ConfigError, StageIds, validate_config
from ddflow.data.catalog import num_classes
from ddflow.data.datasets import DataError, prepare


def _cfg(root, **extra):
    return {"name": "c", "source": "cifar10", "root": str(root), "split_seed": 0,
            "max_train_per_class": None, "max_test_per_class": None, **extra}  # fmt: skip


@pytest.fixture
def offline(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def test_offline_download_says_where_to_put_the_archive(tmp_path, offline):
    with pytest.raises(DataError) as e:
        prepare(_cfg(tmp_path / "data", download=True), tmp_path / "d.npz", tmp_path / "m.json")
    text = str(e.value)
    assert offline, "the downloader was not asked"
    assert "dataset.download could not fetch CIFAR-10" in text and "no network" in text
    assert (
        "cifar-10-python.tar.gz" in text and "https://www.cs.toronto.edu/~kriz/cifar.html" in text
    )
    assert f"'{tmp_path / 'data'}'" in text and "tar xzf" in text


def test_without_download_the_missing_folder_names_both_ways_to_get_it(tmp_path):
    with pytest.raises(DataError, match="set dataset.download: true to fetch it, or extract"):
        prepare(_cfg(tmp_path), tmp_path / "d.npz", tmp_path / "m.json")


def test_data_already_there_is_read_without_downloading(cifar_export, tmp_path, offline):
    b = prepare(_cfg(cifar_export / "cifar-python", download=True), tmp_path / "d.npz",
                tmp_path / "m.json")  # fmt: skip
    assert len(b.train_y) == 30 and not offline


def test_download_is_not_part_of_the_data_id_and_only_for_cifar(tmp_path):
    base = {"teacher": {}, "ipc": [1], "student": {}, "methods": {"r": {"kind": "random"}}}
    plain = validate_config({**base, "dataset": _cfg(tmp_path)})
    fetched = validate_config({**base, "dataset": _cfg(tmp_path, download=True)})
    assert StageIds(plain).data == StageIds(fetched).data
    # the workflow plans before the data job fetches: the class count needs no folder
    assert num_classes(fetched["dataset"]) == 10
    with pytest.raises(ConfigError, match="dataset.download': only sources cifar10 and cifar100"):
        validate_config({**base, "dataset": {"name": "m", "source": "mnist-embedded",
                                             "download": True}})  # fmt: skip
