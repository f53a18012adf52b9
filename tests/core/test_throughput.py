"""Throughput mode: the three stages overlap, results keep their order, failures stay per item."""

from __future__ import annotations

import threading
import time

from ddfa.errors import ImageReadError
from ddfa.pipeline.throughput import pipelined, sequential


def _stages(log: list, lock: threading.Lock, overlap: threading.Event | None = None):
    def decode(item):
        with lock:
            log.append(("decode", item, threading.current_thread().name))
        if item == 2 and overlap is not None:
            overlap.set()
        if item == "bad":
            raise ImageReadError("bad: not an image")
        return item * 10

    def process(item, data):
        if item == 3:
            raise RuntimeError("network failed")
        return data + 1

    def write(item, data, result):
        if item == 0 and overlap is not None:
            # item 2 is decoded while item 0 is still being written: only possible if the stages overlap
            assert overlap.wait(timeout=10), "decoding did not go on while writing"
        with lock:
            log.append(("write", item, threading.current_thread().name))

    return decode, process, write


def test_stages_overlap_and_results_keep_input_order():
    log: list = []
    items = [0, 1, 2, 3, "bad", 5]
    outcomes = list(pipelined(items, *_stages(log, threading.Lock(), threading.Event()), depth=2))
    assert [o.item for o in outcomes] == items
    assert [o.result for o in outcomes] == [1, 11, 21, None, None, 51]
    assert isinstance(outcomes[3].error, RuntimeError) and isinstance(outcomes[4].error, ImageReadError)
    assert [o.index for o in outcomes] == list(range(len(items)))
    assert set(outcomes[0].seconds) == {"decode", "process", "write"}
    threads = {stage: {name for s, _, name in log if s == stage} for stage in ("decode", "write")}
    assert threads["decode"] == {"ddfa-decoder"} and threads["write"] == {"ddfa-writer"}
    assert [item for stage, item, _ in log if stage == "write"] == [0, 1, 2, 5]  # failed items are not written


def test_sequential_has_the_same_contract():
    log: list = []
    stages = _stages(log, threading.Lock())
    items = [0, 1, 2, 3, "bad", 5]
    seq, pipe = list(sequential(items, *stages)), list(pipelined(items, *stages))
    assert [(o.item, o.result, type(o.error)) for o in seq] == [(o.item, o.result, type(o.error)) for o in pipe]


def test_shared_work_goes_to_the_stage_that_is_less_busy():
    """``share`` runs once per item: in the writer's thread while the writer keeps up, in the
    processing thread while results wait for the writer; its failure fails the item (in both
    modes), which is then not written."""
    calls: list = []

    def share(item, data, result):
        calls.append((item, threading.current_thread().name))
        if item == "bad":
            raise RuntimeError("visibility failed")

    # the writer keeps up: each item is processed once the one before it is written (nothing
    # waits for the writer), and processing takes far longer than writing and sharing
    written = {i: threading.Event() for i in range(-1, 4)}
    written[-1].set()

    def process(item, data):
        assert written[item - 1].wait(10)
        time.sleep(0.05)
        return item

    def write(item, data, result):
        written[item].set()

    outcomes = list(pipelined(range(4), lambda i: i, process, write, share=share))
    assert [o.error for o in outcomes] == [None] * 4
    assert calls == [(i, "ddfa-writer") for i in range(4)]

    # the writer is behind: it writes item 0 only once the processing thread has shared item 2
    calls.clear()
    shared_two = threading.Event()

    def slow_write(item, data, result):
        if item == 0:
            assert shared_two.wait(10), "item 2 was not shared by the processing thread"

    def share_and_signal(item, data, result):
        share(item, data, result)
        if item == 2:
            shared_two.set()

    outcomes = list(pipelined(range(5), lambda i: i, lambda i, d: i, slow_write, share=share_and_signal, depth=3))
    assert [o.error for o in outcomes] == [None] * 5
    where = dict(calls)
    assert len(calls) == 5 and where[0] == "ddfa-writer" and where[2] == "ddfa-processor"

    # a failing share fails its item, which is not written, in both modes
    for mode in (sequential, pipelined):
        done: list = []
        outcomes = list(mode([0, "bad", 2], lambda i: i, lambda i, d: d, lambda i, d, r, done=done: done.append(i),
                             share=share))
        assert isinstance(outcomes[1].error, RuntimeError) and done == [0, 2], mode


def test_shared_work_is_split_to_even_out_the_two_threads():
    """Once the seconds of processing, writing and the shared work are known, the processing
    thread takes the fraction of the shares that makes both threads equally busy."""
    from ddfa.pipeline.throughput import _Balance

    def taken(process, write, share, items=100):
        balance = _Balance()
        balance.seconds.update(process=process, write=write, share=share)
        return sum(balance.processor_shares(waiting=0) for _ in range(items))

    assert abs(taken(process=0.010, write=0.002, share=0.020) - 30) <= 1  # 10 + 0.3 * 20 = 2 + 0.7 * 20
    assert taken(process=0.030, write=0.002, share=0.005) == 0  # processing is the slower already
    assert taken(process=0.001, write=0.050, share=0.010) == 100  # writing is, even without the share
    assert _Balance().processor_shares(waiting=1) and not _Balance().processor_shares(waiting=0)  # not known yet


def test_closing_early_stops_the_threads():
    def slow_items():
        yield from range(1000)

    gen = pipelined(slow_items(), lambda i: i, lambda i, d: d, lambda i, d, r: None, depth=1)
    assert next(gen).item == 0
    gen.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ddfa-") and t.is_alive()]


def test_align_folder_writes_the_same_files_in_either_mode(tmp_path, assets_dir, capsys):
    """Throughput mode (three threads; the visibility and the overlays' encoding shared between
    the networks' thread and the writer) writes the same files, byte for byte, as one image
    after the other, and the same manifest entries."""
    import json

    from ddfa.cli.main import main

    folder = assets_dir / "3DDFA_V2/examples/inputs"
    written = {}
    for mode in ("pipelined", "sequential"):
        out = tmp_path / mode
        argv = ["align", str(folder), "--output", str(out), "--assets", str(assets_dir), "--quiet",
                "--outputs", "2d_sparse", "--precision", "f32", "--detector", "faceboxes"] + (
            ["--sequential"] if mode == "sequential" else [])
        assert main(argv) == 0
        assert "3 image(s) aligned, 6 face(s) found, 0 failure(s)" in capsys.readouterr().out
        written[mode] = {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
                         if p.is_file() and ".ddfa" not in p.relative_to(out).parts}
        counts = {p.name: len(json.loads(p.read_text())["faces"]) for p in out.glob("*.json")}
        assert counts == {"JianzhuGuo.jpg.json": 1, "emma.jpg.json": 3, "trump_hillary.jpg.json": 2}
        manifest = [json.loads(line) for line in (out / ".ddfa" / "index.jsonl").read_text().splitlines()]
        assert sorted(r["key"] for r in manifest if r["status"] == "done") == ["JianzhuGuo.jpg", "emma.jpg",
                                                                              "trump_hillary.jpg"]
    assert len(written["pipelined"]) == 6 and written["pipelined"] == written["sequential"]
