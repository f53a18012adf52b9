"""``ddfa batch --engine local``: rows equal ``ddfa align``'s, failures recorded, exact counts,
inputs from folders/globs/lists/URIs, resume after a kill with every image exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ddfa
from ddfa.batch import list_inputs, load_image
from ddfa.cli.main import main
from ddfa.errors import InputError
from ddfa.io.batch import BatchOutput


def _parts(out: Path, table: str) -> list[Path]:
    return sorted((out / table).glob("part-*.parquet"))


def test_batch_help_lists_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["batch", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--output", "--engine", "--address", "--batch-size", "--workers", "--crop-policy", "--max-faces",
                   "--model", "--detector", "--assets", "--device"):
        assert option in text


def test_local_engine_matches_align_and_resumes(tmp_path, mixed_folder, align_reference, assets_dir, capsys,
                                                 check_tables):
    out = tmp_path / "out"
    args = ["batch", str(mixed_folder.root), "--output", str(out), "--assets", str(assets_dir), "--workers", "2",
            "--batch-size", "2", "--shard-size", "3", "--quiet"]
    assert main(args) == 1  # some inputs failed
    printed = capsys.readouterr().out
    success = check_tables(out)
    assert success["options"]["engine"] == "local" and success["run"]["processed"] == len(mixed_folder.inputs)
    assert f"{len(align_reference.failures)} failure(s)" in printed
    for path in mixed_folder.broken:
        assert f"failed: {path}" in printed
    shards = _parts(out, "images")
    assert len(shards) >= 3  # shard size 3 over 10 images
    assert not (out / "_RUNNING").exists()

    # what an interrupted shard leaves (a faces part without its images part, a temporary file)
    # is never read, and the next run deletes it
    orphan = out / "faces" / "part-99999999T000000-dead00-000000.parquet"
    shutil.copy(_parts(out, "faces")[0], orphan)
    temp = out / "images" / ".part-99999999T000000-dead00-000001.parquet.1234.tmp"
    temp.write_bytes(shards[0].read_bytes()[:100])
    faces_before = ddfa.io.read_batch(out).num_rows
    assert faces_before == success["counts"]["faces"]

    # re-running the same command: nothing to do, same tables, _SUCCESS again
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "0 image(s) processed" in printed and f"{len(mixed_folder.inputs)} already done" in printed
    assert not orphan.exists() and not temp.exists()
    assert _parts(out, "images") == shards
    check_tables(out)

    # other options on the same folder are refused: rows must not mix
    assert main([*args, "--crop-policy", "landmarks"]) == 1
    assert "crop_policy" in capsys.readouterr().err


def test_inputs_from_globs_lists_and_uris(tmp_path, mixed_folder):
    root = mixed_folder.root
    from_folder = list_inputs(str(root)).paths
    assert from_folder == mixed_folder.inputs  # recursive, image suffixes only, sorted
    assert list_inputs(str(root / "**" / "*.jpg")).paths == [p for p in from_folder if p.endswith(".jpg")]
    # a text list: relative to the list's folder, comments, blank lines, a duplicate
    text = tmp_path / "list.txt"
    rel = [os.path.relpath(p, tmp_path) for p in from_folder]
    text.write_text("# photos\n" + "\n".join(rel) + "\n\n" + rel[0] + "\n")
    listing = list_inputs(str(text))
    assert listing.paths == from_folder and listing.duplicates == 1
    # CSV with a header; Parquet with file:// URIs; a file:// folder
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("id,path\n" + "".join(f"{i},{p}\n" for i, p in enumerate(from_folder)))
    assert list_inputs(str(csv_path)).paths == from_folder
    uris = [Path(p).as_uri() for p in from_folder]
    pq.write_table(pa.table({"uri": uris, "n": list(range(len(uris)))}), tmp_path / "list.parquet")
    assert list_inputs(str(tmp_path / "list.parquet")).paths == uris
    assert list_inputs(root.as_uri()).paths == uris
    # a URI is read through fsspec exactly as a path is
    photo = mixed_folder.photos[0]
    assert (load_image(photo.as_uri()) == ddfa.read_image(photo)).all()
    with pytest.raises(ddfa.ImageReadError, match="empty file"):
        load_image((root / "empty.jpg").as_uri())
    with pytest.raises(InputError, match="no such file"):
        list_inputs(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="matches no file"):
        list_inputs(str(tmp_path / "*.png"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no image files"):
        list_inputs(str(tmp_path / "empty_dir"))
    with pytest.raises(InputError, match="not a ddfa batch output"):
        ddfa.io.read_batch(tmp_path / "empty_dir")


def _spawn_batch(inputs: Path, out: Path, assets: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ddfa.cli.main", "batch", str(inputs), "--output", str(out),
                             "--assets", str(assets), "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_shards(proc: subprocess.Popen, out: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(_parts(out, "images")) < count:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be stopped: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("no shard committed in time")
        time.sleep(0.02)


def assert_parts_readable(out: Path) -> None:
    """Every file named as data is a complete Parquet file; anything else is a hidden temporary."""
    for table in ("faces", "images", "failures"):
        for path in (out / table).glob("*") if (out / table).exists() else []:
            if path.name.startswith("part-"):
                pq.read_metadata(path)  # raises on a truncated file
            else:
                assert path.name.startswith(".") and path.name.endswith(".tmp"), path


def test_sigkill_then_resume_every_image_once(tmp_path, many_photos, assets_dir, capsys):
    out = tmp_path / "out"
    proc = _spawn_batch(many_photos, out, assets_dir, "--workers", "1", "--batch-size", "2", "--shard-size", "2")
    try:
        _wait_for_shards(proc, out, 2)
        proc.send_signal(signal.SIGKILL)  # the driver only: its workers never write
        proc.wait(timeout=30)
        time.sleep(1.0)
    finally:
        try:  # then whatever is left of the process group this test started
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
    assert not (out / "_SUCCESS").exists()
    assert_parts_readable(out)
    before = ddfa.io.read_batch(out, "images").column("path").to_pylist()
    inputs = list_inputs(str(many_photos)).paths
    assert 0 < len(before) < len(inputs) and len(set(before)) == len(before)

    output = BatchOutput(out)
    assert main(["batch", str(many_photos), "--output", str(out), "--assets", str(assets_dir), "--workers", "1",
                 "--batch-size", "4", "--quiet"]) == 0
    assert f"{len(before)} already done" in capsys.readouterr().out
    assert_parts_readable(out)
    images = ddfa.io.read_batch(out, "images").column("path").to_pylist()
    assert sorted(images) == sorted(inputs)  # every image exactly once
    faces = ddfa.io.read_batch(out, columns=["path", "face_index"]).to_pylist()
    assert len({(f["path"], f["face_index"]) for f in faces}) == len(faces)
    counts = json.loads((out / "_SUCCESS").read_text())["counts"]
    assert counts["images"] == len(inputs) and counts["faces"] == len(faces)
    assert output.committed() == sorted(p.name for p in _parts(out, "images"))


def test_worker_crash_is_a_failure_of_that_image(tmp_path, mixed_folder, align_reference, assets_dir, monkeypatch):
    """A photo that kills its worker process (here by a test hook) is that photo's failure; the
    pool is restarted and the photo that was in flight with it is aligned."""
    from ddfa.batch.local import CRASH_TEST_ENV

    victim, other = mixed_folder.photos[4], mixed_folder.photos[3]  # AFLW photos
    monkeypatch.setenv(CRASH_TEST_ENV, victim.name)
    out = tmp_path / "out"
    assert main(["batch", str(victim), str(other), "--output", str(out), "--assets", str(assets_dir),
                 "--workers", "1", "--batch-size", "1", "--quiet"]) == 1
    failures = ddfa.io.read_batch(out, "failures").to_pylist()
    assert [(f["path"], f["error_class"]) for f in failures] == [(str(victim), "WorkerCrashed")]
    images = {r["path"]: r for r in ddfa.io.read_batch(out, "images").to_pylist()}
    assert sorted(images) == sorted([str(victim), str(other)])
    assert images[str(other)]["num_faces"] == len(align_reference.images[str(other)]["faces"])
    assert ddfa.io.read_batch(out).num_rows == images[str(other)]["num_faces"]


def test_worker_threads_without_importing_torch():
    """A pool worker on onnxruntime or OpenVINO never loads torch (1-2 s and ~300 MB each):
    set_cpu_threads leaves torch unimported and tells it its threads for when it loads; where
    torch is already loaded its threads are set."""
    code = ("import os, sys\n"
            "from ddfa.batch.worker import set_cpu_threads\n"
            "set_cpu_threads(1)\n"
            "assert 'torch' not in sys.modules and os.environ['OMP_NUM_THREADS'] == '1'\n"
            "import torch\n"
            "assert torch.get_num_threads() == 1\n"
            "set_cpu_threads(2)\n"
            "assert torch.get_num_threads() == 2\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
