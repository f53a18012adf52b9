"""Issue 12, command line: ``ddfa align`` loses nothing and overwrites nothing that is not its own.

Unique output names, the manifest as the record of "done", run records that never collide,
a full disk, Ctrl-C (mid-batch and during start-up), and one-line errors for everything a user
can get wrong. The disk-full test mounts a small tmpfs when it runs as root (else it is skipped);
a write shim that fails with ENOSPC runs everywhere.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ddfa.cli.main import main
from ddfa.nets.engines import cpu_native_bf16

REPO = Path(__file__).resolve().parents[2]
#: exit status after Ctrl-C: 130, or killed by SIGINT: CPython 3.11 re-raises SIGINT at exit when a
#: KeyboardInterrupt passed through some C-level code on its way to ddfa's handler (the Unix way
#: of telling a calling shell that the command was interrupted)
INTERRUPTED = (130, -signal.SIGINT)


@pytest.fixture(scope="module")
def photo_bytes(example_images) -> bytes:
    return example_images["JianzhuGuo.jpg"].read_bytes()


@pytest.fixture(scope="module")
def blank_png() -> bytes:
    return cv2.imencode(".png", np.full((60, 80, 3), 200, np.uint8))[1].tobytes()


def align(capsys, *args) -> tuple[int, str, str]:
    code = main(["align", *map(str, args), "--quiet"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def the_run(out: Path, index: int = -1) -> Path:
    return sorted((out / ".ddfa" / "runs").iterdir())[index]


def check_complete(out: Path) -> dict[str, dict]:
    """Every file present is complete and valid; returns the results by key."""
    assert not [p for p in out.rglob("*") if p.name.startswith(".ddfa-")], "temporary files left behind"
    results = {}
    for path in out.rglob("*"):
        if path.is_dir() or ".ddfa" in path.relative_to(out).parts:
            continue
        if path.suffix == ".json":
            results[path.relative_to(out).as_posix()[: -len(".json")]] = json.loads(path.read_text())
        elif path.suffix == ".png":
            image = cv2.imread(str(path))
            assert image is not None and image.size, path
        elif path.suffix == ".ply":
            from ddfa.io.mesh import read_ply

            assert len(read_ply(path).vertices) > 1000, path
    for key, result in results.items():  # a result JSON means all its outputs are there
        overlay = out / f"{key}_2d_sparse.png"
        if overlay.exists():
            assert cv2.imread(str(overlay)).shape[:2] == (result["height"], result["width"])
    return results


def done_keys(out: Path) -> set[str]:
    latest = {}
    for line in (out / ".ddfa" / "index.jsonl").read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        latest[entry["key"]] = entry["status"]
    return {key for key, status in latest.items() if status == "done"}


# ---------------------------------------------------------------------- naming and the manifest
def test_output_names_are_unique_per_input(tmp_path, assets_dir, capsys, photo_bytes, blank_png):
    for rel, data in (("d1/a.jpg", photo_bytes), ("d2/a.jpg", blank_png), ("d3/a_1.jpg", photo_bytes),
                      ("d1/a.png", blank_png)):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    out = tmp_path / "out"
    inputs = [tmp_path / "d1/a.jpg", tmp_path / "d2/a.jpg", tmp_path / "d3/a_1.jpg", tmp_path / "d1/a.png"]
    code, stdout, _ = align(capsys, *inputs, "--output", out, "--assets", assets_dir)
    assert code == 0 and "4 image(s) aligned" in stdout
    results = check_complete(out)
    assert sorted(results) == ["d1/a.jpg", "d1/a.png", "d2/a.jpg", "d3/a_1.jpg"]
    for key, result in results.items():
        assert result["image"] == str(tmp_path / key)
        assert len(result["faces"]) == (0 if key in ("d2/a.jpg", "d1/a.png") else 1)
    # a single photo is named by its file name, suffix kept
    code, _, _ = align(capsys, tmp_path / "d1/a.jpg", "--output", tmp_path / "single", "--assets", assets_dir)
    assert code == 0 and (tmp_path / "single/a.jpg.json").is_file()


def test_run_records_never_collide_nor_get_deleted(tmp_path, assets_dir, capsys, photo_bytes):
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "failures.jpg").write_bytes(photo_bytes)
    (photos / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        code, stdout, _ = align(capsys, photos, "--output", out, "--assets", assets_dir)
        assert code == 1 and "1 image(s) aligned" in stdout and "1 failure(s)" in stdout
        first = the_run(out)
        record = (first / "failures.json").read_bytes()
        assert [f["path"] for f in json.loads(record)] == [str(photos / "broken.jpg")]
        # a second run into the same folder, without failures, leaves the first run's record alone
        code, stdout, _ = align(capsys, photos / "failures.jpg", "--output", out, "--assets", assets_dir,
                                "--overwrite")
    finally:
        os.umask(old)
    assert code == 0
    assert (first / "failures.json").read_bytes() == record
    result = json.loads((out / "failures.jpg.json").read_text())
    assert len(result["faces"]) == 1  # the photo's results, not a failure list
    for path in (out / "failures.jpg.json", first / "failures.json", the_run(out) / "summary.json",
                 out / "failures.jpg_2d_sparse.png"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_output_into_the_input_folder_and_reruns(tmp_path, assets_dir, capsys, photo_bytes, blank_png):
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(photo_bytes)
    (photos / "a_2d_sparse.png").write_bytes(blank_png)  # the user's own file
    code, stdout, _ = align(capsys, photos, "--output", photos, "--assets", assets_dir)
    assert code == 0 and "2 image(s) aligned" in stdout
    assert (photos / "a_2d_sparse.png").read_bytes() == blank_png
    files = sorted(p.name for p in photos.iterdir())
    assert files == [".ddfa", "a.jpg", "a.jpg.json", "a.jpg_2d_sparse.png", "a_2d_sparse.png",
                     "a_2d_sparse.png.json", "a_2d_sparse.png_2d_sparse.png"]
    # a re-run: done images are skipped and ddfa's own outputs are not taken as inputs
    code, stdout, _ = align(capsys, photos, "--output", photos, "--assets", assets_dir)
    assert code == 0 and "0 image(s) aligned" in stdout and "2 already done" in stdout
    assert sorted(p.name for p in photos.iterdir()) == files
    ignored = json.loads((the_run(photos) / "summary.json").read_text())["ignored"]
    assert sorted(Path(i["path"]).name for i in ignored) == ["a.jpg.json", "a.jpg_2d_sparse.png",
                                                            "a_2d_sparse.png.json", "a_2d_sparse.png_2d_sparse.png"]
    # --overwrite redoes them; a changed input is redone without it
    code, stdout, _ = align(capsys, photos, "--output", photos, "--assets", assets_dir, "--overwrite")
    assert code == 0 and "2 image(s) aligned" in stdout
    (photos / "a_2d_sparse.png").write_bytes(cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))[1].tobytes())
    code, stdout, _ = align(capsys, photos, "--output", photos, "--assets", assets_dir)
    assert "1 image(s) aligned" in stdout and "1 already done" in stdout
    assert json.loads((photos / "a_2d_sparse.png.json").read_text())["width"] == 40
    check_complete(photos)



@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs OpenVINO (bf16)")
def test_another_precision_is_not_already_done(tmp_path, assets_dir, capsys, photo_bytes):
    """Results in bf16 are not the float32 ones (up to ~1% of the face): a re-run asking for
    another number format redoes the images instead of keeping the other format's results."""
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(photo_bytes)
    openvino = ("--backend", "openvino", "--outputs", "none")
    code, stdout, _ = align(capsys, photos, "--output", tmp_path / "out", "--assets", assets_dir, *openvino,
                            "--precision", "bf16")
    assert code == 0 and "1 image(s) aligned" in stdout
    code, stdout, _ = align(capsys, photos, "--output", tmp_path / "out", "--assets", assets_dir, *openvino,
                            "--precision", "f32")
    assert code == 0 and "1 image(s) aligned" in stdout and "already done" not in stdout
    summary = json.loads((the_run(tmp_path / "out") / "summary.json").read_text())
    assert (summary["backend"], summary["precision"]) == ("openvino", {"detector": "f32", "regressor": "f32"})
    code, stdout, _ = align(capsys, photos, "--output", tmp_path / "f32", "--assets", assets_dir, *openvino,
                            "--precision", "f32")
    assert (tmp_path / "out/a.jpg.json").read_text() == (tmp_path / "f32/a.jpg.json").read_text()
    # the same number format asked for another way (auto resolves to it here, or not) is the same settings
    auto = "bf16" if cpu_native_bf16() else "f32"
    code, stdout, _ = align(capsys, photos, "--output", tmp_path / "out", "--assets", assets_dir, *openvino)
    assert code == 0 and ("1 already done" in stdout) == (auto == "f32")
    check_complete(tmp_path / "out")

def test_inputs_and_foreign_files_are_never_replaced(tmp_path, assets_dir, capsys, photo_bytes, blank_png):
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(photo_bytes)
    (photos / "a.jpg_2d_sparse.png").write_bytes(blank_png)  # an input named like a.jpg's overlay
    code, stdout, _ = align(capsys, photos, "--output", photos, "--assets", assets_dir, "--overwrite")
    assert code == 1 and "would replace an input" in stdout
    assert (photos / "a.jpg_2d_sparse.png").read_bytes() == blank_png and not (photos / "a.jpg.json").exists()
    # a file ddfa did not write sits at an output name: refused, unless --overwrite
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.jpg.json").write_text("my notes")
    code, stdout, _ = align(capsys, photos / "a.jpg", "--output", out, "--assets", assets_dir)
    assert code == 1 and "a file ddfa did not write" in stdout and (out / "a.jpg.json").read_text() == "my notes"
    code, _, _ = align(capsys, photos / "a.jpg", "--output", out, "--assets", assets_dir, "--overwrite")
    assert code == 0 and json.loads((out / "a.jpg.json").read_text())["faces"]
    # another input with the same name in a later run does not replace these results
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jpg").write_bytes(blank_png)
    code, stdout, _ = align(capsys, other / "a.jpg", "--output", out, "--assets", assets_dir)
    assert code == 1 and "hold the results of another input" in stdout
    assert json.loads((out / "a.jpg.json").read_text())["image"] == str(photos / "a.jpg")


# ---------------------------------------------------------------------- what folder scans report
def test_folder_scan_lists_what_it_skips(tmp_path, assets_dir, capsys, photo_bytes, example_images):
    photos = tmp_path / "in"
    (photos / "sub").mkdir(parents=True)
    (photos / "a.jpg").write_bytes(photo_bytes)
    (photos / "sub" / "loop").symlink_to(photos, target_is_directory=True)
    (photos / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (photos / "self.jpg").symlink_to(photos / "self.jpg")
    (photos / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (photos / "notes.txt").write_text("not an image")
    face = cv2.resize(cv2.imread(str(example_images["JianzhuGuo.jpg"])), (207, 276))
    (photos / "anim.gif").write_bytes(cv2.imencodemulti(".gif", [face, face[::-1].copy()])[1].tobytes())
    code, stdout, stderr = align(capsys, photos, "--output", tmp_path / "out", "--assets", assets_dir,
                                 "--recursive")
    assert code == 1 and "2 image(s) aligned" in stdout and "4 failure(s)" in stdout
    for name, reason in (("loop", "symbolic link loop"), ("gone.jpg", "broken symbolic link"),
                         ("self.jpg", "symbolic link loop"), ("photo.heic", "unsupported image format")):
        assert any(line.startswith("  failed:") and name in line and reason in line
                   for line in stdout.splitlines()), name
    result = json.loads((tmp_path / "out" / "anim.gif.json").read_text())
    assert any("only the first" in w for w in result["warnings"]) and "only the first" in stderr
    ignored = json.loads((the_run(tmp_path / "out") / "summary.json").read_text())["ignored"]
    assert [Path(i["path"]).name for i in ignored] == ["notes.txt"]


def test_unlistable_folder_is_a_failure_not_a_crash(tmp_path, assets_dir, capsys, photo_bytes, monkeypatch):
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "a.jpg").write_bytes(photo_bytes)
    (tmp_path / "locked").mkdir()
    import ddfa.cli.align as align_cli

    real_scandir = os.scandir

    def scandir(path):
        if isinstance(path, (str, os.PathLike)) and Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(align_cli.os, "scandir", scandir)
    code, stdout, _ = align(capsys, tmp_path / "ok", tmp_path / "locked", "--output", tmp_path / "out",
                            "--assets", assets_dir)
    assert code == 1 and "1 image(s) aligned" in stdout
    assert any("locked" in line and "cannot list the folder (Permission denied)" in line
               for line in stdout.splitlines())


def test_newline_in_a_file_name_cannot_forge_lines(tmp_path, assets_dir, capsys):
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "x\nddfa align: 99 image(s) aligned.jpg").write_bytes(b"junk")
    code, stdout, stderr = align(capsys, photos, "--output", tmp_path / "out", "--assets", assets_dir)
    assert code == 1
    lines = (stdout + stderr).splitlines()
    assert not any(line.startswith("ddfa align: 99") for line in lines)
    assert sum("x\\nddfa align: 99 image(s) aligned.jpg" in line for line in lines) == 2  # skipped + failed


# ---------------------------------------------------------------------- one-line errors, early
def test_user_errors_are_one_line_and_early(tmp_path, assets_dir, capsys, photo_bytes):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(photo_bytes)
    (tmp_path / "file").write_text("x")
    cases = [
        (["--output", tmp_path / "file"], "exists and is not a folder"),
        (["--output", tmp_path / "file" / "out"], "a part of the path is a file"),
        (["--output", tmp_path / "o", "--device", "cuda"], "device 'cuda' is not available"),
        (["--output", tmp_path / "o", "--device", "banana"], "unknown device 'banana'"),
        (["--output", tmp_path / "o", "--max-faces", "0"], "--max-faces must be at least 1"),
        (["--output", tmp_path / "o", "--detector", "none"], "--detector none"),
    ]
    if __import__("torch").cuda.is_available():  # a GPU machine: 'cuda' is a fine device there
        cases.pop(2)
    for extra, expected in cases:
        code = main(["align", str(photo), "--assets", str(assets_dir), "--quiet", *map(str, extra)])
        captured = capsys.readouterr()
        assert code == 1, extra
        assert captured.err.count("\n") == 1 and captured.err.startswith("ddfa: error:") and expected in captured.err, \
            captured.err
        assert "Traceback" not in captured.err
    # --debug adds the traceback
    assert main(["--debug", "align", str(photo), "--output", str(tmp_path / "o"), "--device", "banana"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_broken_checkpoint_is_one_line(tmp_path, assets_dir, capsys, photo_bytes):
    import torch

    from ddfa.morphable.params import Whitening
    from ddfa.nets.checkpoint import make_ddfa_checkpoint
    from ddfa.nets.mobilenet_v1 import MobileNetV1

    ckpt = make_ddfa_checkpoint(MobileNetV1(width=0.5), arch="mobilenet_v1", width=0.5,
                                whitening=Whitening(np.zeros(62, np.float32), np.ones(62, np.float32)))
    ckpt["ddfa"]["config"]["width"] = "abc"
    torch.save(ckpt, tmp_path / "abc.pth")
    (tmp_path / "a.jpg").write_bytes(photo_bytes)
    code = main(["align", str(tmp_path / "a.jpg"), "--model", str(tmp_path / "abc.pth"), "--assets", str(assets_dir),
                 "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and str(tmp_path / "abc.pth") in err and "'abc'" in err


@pytest.fixture()
def readonly_dir(tmp_path):
    """A folder nobody can write into: a read-only tmpfs as root, else a 0555 folder."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() == 0:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                                capture_output=True)
        if result.returncode != 0:
            pytest.skip("running as root without permission to mount a read-only tmpfs")
        yield path
        subprocess.run(["umount", str(path)], capture_output=True)
    else:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)


def test_unwritable_outputs_fail_before_any_work(tmp_path, readonly_dir, assets_dir, capsys, photo_bytes,
                                                  monkeypatch):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(photo_bytes)
    # align: refused before the model is read (a missing model would be reported otherwise)
    code = main(["align", str(photo), "--output", str(readonly_dir / "out"), "--model", str(tmp_path / "no.pth"),
                 "--assets", str(assets_dir), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and str(readonly_dir) in err, err
    assert "read-only file system" in err or "permission denied" in err.lower(), err
    # video: a read-only folder, no frames, an unknown container, a folder as output: one line, nothing "wrote"
    clip = REPO.parent / "shared" / "data" / "video" / "obama.mp4"
    video_cases = ((["-o", readonly_dir / "x.mp4"], "cannot"),
                   (["-o", tmp_path / "v.mp4", "--max-frames", "0"], "--max-frames must be at least 1"),
                   (["-o", tmp_path / "v.xyz"], "unknown video container"),
                   (["-o", str(tmp_path) + "/"], "is a folder"))
    for extra, expected in video_cases:
        code = main(["video", str(clip), "--assets", str(assets_dir), "--quiet", *map(str, extra)])
        captured = capsys.readouterr()
        assert code == 1 and "wrote" not in captured.out and captured.err.count("\n") == 1, captured
        assert expected in captured.err, captured.err
    assert not list(tmp_path.glob("v.*"))
    # export: a folder as --output is refused, and nothing is left in the working folder
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    before = sorted(os.listdir(tmp_path))
    assert main(["export", "onnx", "--output", "models/", "--assets", str(assets_dir)]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == before and not os.listdir(tmp_path / "models")


def test_export_writes_files_with_the_usual_mode(tmp_path, assets_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        assert main(["export", "onnx", "--output", "mb05.onnx", "--assets", str(assets_dir)]) == 0
    finally:
        os.umask(old)
    assert os.listdir(tmp_path) == ["mb05.onnx"]
    assert stat.S_IMODE((tmp_path / "mb05.onnx").stat().st_mode) == 0o644


# ---------------------------------------------------------------------- a full disk
def _batch(folder: Path, photo_bytes: bytes, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        (folder / f"p{k:02d}.jpg").write_bytes(photo_bytes)
    return folder


def _check_disk_full(out: Path, count: int, code: int, stdout: str) -> None:
    """After a run that filled the disk: one line said so, no traceback, every file present is
    complete, some images are done and the rest are not."""
    assert code == 1 and "disk full" in stdout and "re-run to complete the rest" in stdout
    partial = check_complete(out)
    assert 0 < len(done_keys(out)) < count
    assert set(partial) <= {f"p{k:02d}.jpg" for k in range(count)}


def test_disk_full_leaves_complete_files_and_a_rerun_completes(tmp_path, assets_dir, capsys, photo_bytes):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the write-shim test covers this case)")
    out = tmp_path / "out"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(out)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        photos = _batch(tmp_path / "in", photo_bytes, 8)  # each overlay is ~0.3 MB: about three fit
        code, stdout, _ = align(capsys, photos, "--output", out, "--assets", assets_dir)
        _check_disk_full(out, 8, code, stdout)
        aligned = len(done_keys(out))
        subprocess.run(["mount", "-o", "remount,size=64m", str(out)], check=True)
        code, stdout, _ = align(capsys, photos, "--output", out, "--assets", assets_dir)
        assert code == 0 and f"{8 - aligned} image(s) aligned" in stdout and f"{aligned} already done" in stdout
        assert len(check_complete(out)) == 8 and len(done_keys(out)) == 8
    finally:
        subprocess.run(["umount", str(out)], capture_output=True)


def test_disk_full_write_shim(tmp_path, assets_dir, capsys, photo_bytes, monkeypatch):
    import ddfa.io.atomic as atomic

    budget = {"left": 900_000}
    real_open = open

    class FullDisk:
        def __init__(self, handle):
            self._handle = handle

        def write(self, data):
            budget["left"] -= len(data)
            if budget["left"] < 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self._handle.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

    monkeypatch.setattr(atomic, "open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    photos = _batch(tmp_path / "in", photo_bytes, 6)
    out = tmp_path / "out"
    code, stdout, _ = align(capsys, photos, "--output", out, "--assets", assets_dir)
    _check_disk_full(out, 6, code, stdout)
    aligned = len(done_keys(out))
    monkeypatch.undo()
    code, stdout, _ = align(capsys, photos, "--output", out, "--assets", assets_dir)
    assert code == 0 and f"{aligned} already done" in stdout
    assert len(check_complete(out)) == 6


# ---------------------------------------------------------------------- Ctrl-C
def _ddfa(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ddfa.cli.main", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def test_interrupt_mid_batch_then_rerun_completes(tmp_path, assets_dir, capsys, photo_bytes):
    count = 9
    photos = _batch(tmp_path / "in", photo_bytes, count)
    out = tmp_path / "out"
    proc = _ddfa("align", photos, "--output", out, "--assets", assets_dir, "--outputs", "2d_sparse,ply", "--quiet")
    manifest = out / ".ddfa" / "index.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_text().count('"status":"done"') >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode in INTERRUPTED, (stdout, stderr)
    assert "Traceback" not in stdout + stderr and "interrupted" in stdout
    partial = check_complete(out)
    done = done_keys(out)
    assert 2 <= len(done) < count and set(partial) >= done
    for key in done:
        assert (out / f"{key}_face0.ply").is_file()
    code, stdout, _ = align(capsys, photos, "--output", out, "--assets", assets_dir, "--outputs", "2d_sparse,ply")
    assert code == 0 and f"{len(done)} already done" in stdout
    assert len(check_complete(out)) == count and len(done_keys(out)) == count


def _wait_for_library(proc: subprocess.Popen, name: str, timeout: float = 120.0) -> bool:
    """Wait until ``proc`` has mapped a shared library whose path contains ``name`` (it is in the
    middle of start-up, importing it); False if it ended first."""
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if name in maps.read_text():
                return True
        except OSError:
            return False
        time.sleep(0.01)
    return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the start-up's progress")
def test_interrupt_during_start_up_is_one_line(tmp_path, assets_dir, photo_bytes):
    (tmp_path / "a.jpg").write_bytes(photo_bytes)
    # Ctrl-C while the inference engine is being loaded (after the start-up of the Python
    # interpreter itself, which is not ddfa's; torch is not imported once the converted models are
    # cached); twice, in case a library swallows the first
    from ddfa.nets.engines import choose_backend

    engine = choose_backend("auto", "cpu")
    interrupted = 0
    for _attempt in range(2):
        proc = _ddfa("align", tmp_path / "a.jpg", "--output", tmp_path / "out", "--assets", assets_dir)
        reached = _wait_for_library(proc, "libtorch" if engine == "torch" else engine)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        assert "Traceback" not in stderr + stdout, stderr
        if reached and proc.returncode != 0:  # (0: done before the signal, or a library swallowed it)
            assert proc.returncode in INTERRUPTED and "interrupted" in stderr + stdout, (proc.returncode, stderr)
            interrupted += 1
            break
    assert interrupted >= 1  # at least one signal landed in the middle of start-up

