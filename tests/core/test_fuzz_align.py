"""Issue 12 acceptance: a few hundred mutated JPEG, PNG and WebP files through ``ddfa align`` in one
process. No crash, no hang (a time bound per file), every file either aligned or listed as a
failure, and the failures counted are exactly the files refused."""

from __future__ import annotations

import json
import random
import struct

import cv2
import numpy as np
import pytest

from ddfa.cli.main import main

NUM_FILES = 300
SEED = 12
SECONDS_PER_FILE = 15.0  # generous: the machine is shared; a hang is minutes, not seconds


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits of the kinds real damage and hostile files show."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(8)
        n = len(data)
        if kind == 0:  # flip a few bytes anywhere
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(n)] = rng.randrange(256)
        elif kind == 1:  # flip bytes in the header, where sizes and lengths live
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(min(n, 64))] = rng.randrange(256)
        elif kind == 2:  # cut
            data = data[: rng.randrange(1, n)]
        elif kind == 3:  # cut and append an end marker
            data = data[: rng.randrange(1, n)] + rng.choice([b"\xff\xd9", b"\x00\x00\x00\x00IEND\xaeB`\x82"])
        elif kind == 4:  # insert random bytes
            at = rng.randrange(n)
            data = data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + data[at:]
        elif kind == 5:  # repeat a chunk
            at, size = rng.randrange(n), rng.randint(1, 512)
            data = data[:at] + data[at:at + size] * rng.randint(2, 4) + data[at:]
        elif kind == 6:  # zero a range
            at = rng.randrange(n)
            data[at:at + rng.randint(1, 256)] = bytes(len(data[at:at + 256]))[: rng.randint(1, 256)]
        else:  # forge the declared size (a decompression bomb)
            big = struct.pack(">HH", rng.choice([30000, 65535, 12000]), rng.choice([30000, 65535, 9000]))
            at = rng.randrange(min(n, 40))
            data[at:at + 4] = big
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory, example_images):
    photo = cv2.imread(str(example_images["JianzhuGuo.jpg"]))
    small = cv2.resize(photo, (96, 128), interpolation=cv2.INTER_AREA)
    seeds = {ext: cv2.imencode(ext, small)[1].tobytes() for ext in (".jpg", ".png", ".webp")}
    rng = random.Random(SEED)
    folder = tmp_path_factory.mktemp("fuzz")
    for k in range(NUM_FILES):
        ext = (".jpg", ".png", ".webp")[k % 3]
        (folder / f"m{k:03d}{ext}").write_bytes(_mutate(seeds[ext], rng))
    return folder


def test_mutated_images_are_aligned_or_listed(fuzz_folder, tmp_path, assets_dir, capsys):
    out = tmp_path / "out"
    code = main(["align", str(fuzz_folder), "--output", str(out), "--assets", str(assets_dir), "--quiet",
                 "--outputs", "2d_sparse"])
    captured = capsys.readouterr()
    assert code in (0, 1) and "Traceback" not in captured.err + captured.out
    (run,) = (out / ".ddfa" / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    failures = json.loads((run / "failures.json").read_text())
    failed = {f["path"] for f in failures}
    aligned = {p.name[: -len(".json")] for p in out.glob("*.json")}
    names = {p.name for p in fuzz_folder.iterdir()}
    # every file aligned or listed as a failure, never both, and the counts agree
    assert summary["inputs"] == NUM_FILES and summary["aligned"] + summary["failures"] == NUM_FILES
    assert aligned | {p.rsplit("/", 1)[-1] for p in failed} == names and not aligned & {p.rsplit("/", 1)[-1]
                                                                                           for p in failed}
    assert len(failures) == summary["failures"] == NUM_FILES - len(aligned)
    assert f"{len(aligned)} image(s) aligned" in captured.out and f"{len(failures)} failure(s)" in captured.out
    assert code == (1 if failures else 0)
    # each failure says which file and why, in one line; each result is complete and valid
    for failure in failures:
        assert failure["error"] and "\n" not in failure["error"]
    for name in aligned:
        result = json.loads((out / f"{name}.json").read_text())
        overlay = cv2.imread(str(out / f"{name}_2d_sparse.png"))
        assert overlay is not None and overlay.shape[:2] == (result["height"], result["width"])
    # no hang: a bound per file
    assert max(summary["seconds_per_image"].values()) < SECONDS_PER_FILE
    # the mutations did reach both outcomes
    assert 20 < len(aligned) < NUM_FILES - 20, (len(aligned), sorted(f["error"] for f in failures)[:5])
    assert not list(out.rglob(".ddfa-*"))
    np.testing.assert_equal(sorted(json.loads(line)["status"] for line in
                                   (out / ".ddfa" / "index.jsonl").read_text().splitlines()).count("done"),
                            len(aligned))
