"""Asset store: checksums, tampering, safe unpickling, fetching (with a fake network)."""

from __future__ import annotations

import io
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from ddfa.assets import KNOWN_FILES, AssetStore, load_numpy_pickle, load_torch_checkpoint, loads_numpy_pickle
from ddfa.assets.fetch import fetch
from ddfa.errors import AssetError, UnsafePickleError

WHITENING = "3DDFA_V2/configs/param_mean_std_62d_120x120.pkl"


def test_every_shared_asset_matches_its_pinned_checksum(store):
    statuses = {path: store.status(path) for path, known in KNOWN_FILES.items() if known.sha256}
    assert statuses and all(s == "ok" for s in statuses.values()), statuses


def test_missing_file_error_names_file_and_remedy(tmp_path):
    store = AssetStore(tmp_path)
    with pytest.raises(AssetError) as info:
        store.path("3DDFA_V2/weights/mb05_120x120.pth")
    message = str(info.value)
    assert "mb05_120x120.pth" in message and str(tmp_path) in message
    assert "--assets" in message and "ddfa assets fetch" in message


def test_tampered_file_is_refused(tmp_path, assets_dir):
    target = tmp_path / WHITENING
    target.parent.mkdir(parents=True)
    shutil.copy(assets_dir / WHITENING, target)
    store = AssetStore(tmp_path)
    assert store.status(WHITENING) == "ok"
    assert store.load_pickle(WHITENING)["mean"].shape == (62,)
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF  # flip bits inside the std array
    target.write_bytes(bytes(data))
    os.utime(target, ns=(1, 1))  # a new mtime, as any edit gives
    assert store.status(WHITENING) == "corrupt"
    with pytest.raises(AssetError, match="checksum mismatch"):
        store.load_pickle(WHITENING)


def test_environment_variable_selects_asset_root(monkeypatch, assets_dir):
    monkeypatch.setenv("DDFA_HOME", str(assets_dir))
    assert AssetStore().root == assets_dir
    assert AssetStore().status(WHITENING) == "ok"


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch ddfa_pwned_marker",))


def test_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps({"mean": np.zeros(3), "evil": _RunsCode()})
    with pytest.raises(UnsafePickleError, match="os|posix|system"):
        loads_numpy_pickle(payload, "evil.pkl")
    assert not (tmp_path / "ddfa_pwned_marker").exists()
    # the same with an old-protocol pickle and with a builtins global
    with pytest.raises(UnsafePickleError):
        loads_numpy_pickle(pickle.dumps(_RunsCode(), protocol=0), "evil0.pkl")
    with pytest.raises(UnsafePickleError):
        loads_numpy_pickle(pickle.dumps(eval), "eval.pkl")


def test_numpy_pickles_load_and_object_arrays_are_refused(tmp_path, assets_dir):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.int64(3), (1.5, "x")]}
    loaded = loads_numpy_pickle(pickle.dumps(arrays))
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    assert loaded["b"][0] == 3 and loaded["b"][1] == (1.5, "x")
    with pytest.raises(UnsafePickleError):
        loads_numpy_pickle(pickle.dumps(np.array([object()], dtype=object)))
    with pytest.raises(AssetError):
        loads_numpy_pickle(b"\x80\x04\x95garbage")
    # the real upstream pickles (numpy 1.x module paths) load
    tri = load_numpy_pickle(assets_dir / "3DDFA_V2/configs/tri.pkl")
    assert tri.shape == (3, 76073) and tri.dtype == np.int32


def test_torch_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": _RunsCode()}, path)
    with pytest.raises(AssetError, match="weights_only"):
        load_torch_checkpoint(path)
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, good)
    assert load_torch_checkpoint(good)["epoch"] == 3


class _FakeResponse(io.BytesIO):
    headers: dict = {}


def test_fetch_verifies_downloads_without_network(tmp_path, assets_dir):
    store = AssetStore(tmp_path)
    urls = []

    def good_opener(url):
        urls.append(url)
        return _FakeResponse((assets_dir / WHITENING).read_bytes())

    report = fetch(store, [WHITENING], progress=False, opener=good_opener)
    assert report == {WHITENING: "downloaded"}
    assert urls == ["https://github.com/cleardusk/3DDFA_V2/raw/1b6c676/configs/param_mean_std_62d_120x120.pkl"]
    assert store.status(WHITENING) == "ok"
    assert fetch(store, [WHITENING], progress=False, opener=good_opener) == {WHITENING: "present"}

    other = AssetStore(tmp_path / "other")
    report = fetch(other, [WHITENING], progress=False, opener=lambda url: _FakeResponse(b"not the file"))
    assert report[WHITENING].startswith("failed") and "sha256" in report[WHITENING]
    assert not (other.root / WHITENING).exists()
    assert not list((other.root / WHITENING).parent.glob("*.part"))


def test_assets_list_command(assets_dir, capsys):
    from ddfa.cli.main import main

    assert main(["assets", "list", "--assets", str(assets_dir)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "3DDFA_V2/weights/mb05_120x120.pth" in out
    assert "missing" in out  # mb1 and the v1 checkpoint are not shared
    assert "non-commercial" in out


def test_file_digest_is_recorded_across_processes_and_redone_when_the_file_changes(tmp_path, monkeypatch):
    from ddfa.assets import store as store_module

    monkeypatch.setenv("DDFA_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "file.bin"
    path.write_bytes(b"a" * 1000)
    first = store_module.file_digest(path)
    assert (tmp_path / "cache" / store_module.DIGEST_RECORD).is_file()
    store_module._DIGESTS.clear()  # a new process: the record is used, the file not read again
    monkeypatch.setattr(store_module, "sha256_file", lambda p: pytest.fail("hashed again"))
    assert store_module.file_digest(path) == first
    monkeypatch.undo()
    monkeypatch.setenv("DDFA_CACHE", str(tmp_path / "cache"))
    stat = path.stat()
    path.write_bytes(b"b" * 1000)  # same size, mtime put back: the ctime still tells
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    store_module._DIGESTS.clear()
    assert store_module.file_digest(path) == store_module.sha256_file(path) != first


def test_cache_and_config_folders_follow_one_rule(monkeypatch, tmp_path):
    from ddfa.assets.store import default_cache_dir
    from ddfa.nets.model_cache import config_dir

    for name in ("DDFA_CACHE", "DDFA_CONFIG", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache/ddfa" and config_dir() == tmp_path / ".config/ddfa"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xc"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xf"))
    assert default_cache_dir() == tmp_path / "xc/ddfa" and config_dir() == tmp_path / "xf/ddfa"
    monkeypatch.setenv("DDFA_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("DDFA_CONFIG", str(tmp_path / "f"))
    assert default_cache_dir() == tmp_path / "c" and config_dir() == tmp_path / "f"
