"""Train mb05 (MobileNet-V1 x0.5) from scratch on synthetic faces: PDC vs VDC vs WPDC, each at its own lr.

    taskset -c 0 nice python experiments/train_synthetic.py --out out/exp_synth --assets ../shared/assets

1. renders three synthetic sets with ``ddfa synth`` (different seeds): a training set, a
   **validation** set (used only to choose learning rates) and a **held-out** set (used only for
   the reported numbers); sets already in ``--out`` are re-used;
2. scores two constant baselines on the held-out set: the mean face (the training set's mean
   parameters) and the whitening mean;
3. learning-rate sweep: for every loss, one short run (``--sweep-steps``) per lr of its grid
   (``--lr-pdc`` / ``--lr-vdc`` / ``--lr-wpdc``), scored by the landmark NME of its final
   weights on the validation set; a run that diverges (NaN/inf loss) is recorded as such;
4. full runs: every loss for ``--steps`` SGD steps at the lr its sweep chose (if that run
   diverges, the next-best lr of the sweep is tried), validated on the held-out set every epoch
   for the curves;
5. 3DDFA's schedule (its best model, ``phase1_wpdc_vdc``): WPDC from scratch for
   ``--steps - --ft-steps`` steps at WPDC's chosen lr, then VDC fine-tuning from those weights
   for ``--ft-steps`` steps at VDC's chosen lr (fresh optimizer, ``--ft-warmup`` warm-up epochs,
   as 3DDFA's ``train_vdc.sh``), i.e. the same total budget as the single-loss runs;
6. scores every method's final weights on the held-out set, prints a table and writes
   ``sweep.csv``, ``curves.csv``, ``summary.csv``, ``summary.json`` and ``curves.png`` to ``--out``.

Every run uses the same data, batch, seed (initial weights, data order, augmentation) and lr
schedule shape: 1 warm-up epoch at 0.2 x lr (none for the fine-tuning stage), then lr, x0.2
after 70 % and after 90 % of the run's epochs (3DDFA's schedule, scaled to the budget). Nothing is
chosen on the held-out set (no best-epoch picking) and nothing touches AFLW / AFLW2000-3D.

Everything runs on the CPU with ``--threads`` torch threads (default 1) and no loader workers, so
CPU seconds are single-core seconds. A run whose folder already holds its result is not trained
again unless ``--retrain`` (delete ``OUT/sweep`` / ``OUT/run_*`` to start over).

Default lr grids (each a x3-ish log grid): at the first step the gradient norm over the
network's weights is about 5.7 for PDC, 1.6 for WPDC (its weights are <= 1) and 1.3e4 for VDC
(pixels^2), so WPDC's grid is PDC's shifted up and VDC's is far lower; VDC's loss grows faster
than quadratically with the pose error, so its stable range is lower than its gradient ratio
suggests (an earlier 36-step probe diverged at 2e-5 without warm-up). PDC's grid has a fifth
point (3) because its best lr of the first four was the largest. Above the stable range a run
rarely gives NaN: its loss spikes and the network collapses to (about) the mean face, which the
validation NME shows.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ddfa.assets import resolve_assets
from ddfa.io.results import write_json
from ddfa.morphable import load_morphable_model, load_whitening
from ddfa.nets.registry import create_model
from ddfa.train.config import TrainConfig
from ddfa.train.data import read_ddfa_dataset
from ddfa.train.metrics import landmark_nme
from ddfa.train.synth import synthesize
from ddfa.train.trainer import TrainingError, train

DEFAULT_GRIDS = {"pdc": "0.03,0.1,0.3,1,3", "wpdc": "0.1,0.3,1,3", "vdc": "3e-6,1e-5,3e-5,1e-4"}
SCHEDULE = "wpdc+vdc"


def constant_nme(params: np.ndarray, targets: np.ndarray, model) -> float:
    """Mean NME (%) of predicting ``params`` ((62,) for every face, or (N, 62)) for ``targets`` (N, 62)."""
    tm = model.to_torch()
    target = torch.as_tensor(targets)
    pred = torch.as_tensor(params, dtype=torch.float32).expand_as(target)
    return 100.0 * float(landmark_nme(pred, target, tm).mean())


def lr_schedule(steps: int, steps_per_epoch: int) -> tuple[int, list[int]]:
    """(epochs, milestones) of a ``steps``-step run: lr x0.2 after 70 % and 90 % of the epochs."""
    epochs = math.ceil(steps / steps_per_epoch)
    return epochs, [max(2, round(0.7 * epochs)), max(3, round(0.9 * epochs))]


def fmt_lr(lr: float) -> str:
    return f"{lr:g}"


class Experiment:
    """Trains and scores runs, re-using finished ones; all CPU times are this process's."""

    def __init__(self, args, store, data: dict, model):
        self.args, self.store, self.data, self.model = args, store, data, model
        self.out = Path(args.out)
        self.steps_per_epoch = args.train_num // args.batch_size
        self._crops: dict[str, np.ndarray] = {}

    def crops(self, name: str) -> np.ndarray:
        if name not in self._crops:
            self._crops[name] = np.stack([cv2.imread(str(p)) for p in self.data[name].paths])
        return self._crops[name]

    def score(self, weights: Path, name: str) -> float:
        """NME (%) of the weights in ``weights`` on data set ``name`` (through ddfa's Regressor)."""
        regressor = create_model(str(weights), assets=self.store, backend="torch")
        return constant_nme(regressor(self.crops(name)), self.data[name].params, self.model)

    def run(self, run_dir: Path, *, loss: str, lr: float, steps: int, val: str, init: Path | None = None,
            warmup: int = 1) -> dict:
        """Train one run (or read its recorded result); returns its record.

        The record: ``status`` ("ok" / "diverged"), ``steps`` done, ``cpu_s`` / ``wall_s`` of the
        training, ``history`` (the trainer's log rows) and, when ok, ``final`` (weights path).
        """
        result_file = run_dir / "result.json"
        if not self.args.retrain and result_file.is_file():
            record = json.loads(result_file.read_text())
            if record.get("status") == "diverged" or (run_dir / "final.pth").is_file():
                return self._with_history(run_dir, record)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        epochs, milestones = lr_schedule(steps, self.steps_per_epoch)
        cfg = TrainConfig.from_dict(dict(
            train=str(self.out / "synth_train"), val=str(self.out / f"synth_{val}"), out=str(run_dir),
            width=None if init else 0.5, init=str(init) if init else None, loss=loss, lr=lr,
            batch_size=self.args.batch_size, epochs=epochs, milestones=milestones, warmup=warmup,
            max_steps=steps, num_workers=0, threads=self.args.threads, device="cpu", seed=self.args.seed,
            assets=str(self.store.root), checkpoints="last", log_every=25, progress=False, export_v2=False))
        start_wall, start_cpu = time.time(), time.process_time()
        status, message = "ok", ""
        try:
            train(cfg)
        except TrainingError as exc:
            status, message = "diverged", str(exc)
        record = {"status": status, "message": message, "loss": loss, "lr": lr, "steps_budget": steps,
                  "epochs": epochs, "milestones": milestones, "warmup": warmup, "val": val,
                  "init": str(init) if init else None,
                  "cpu_s": round(time.process_time() - start_cpu, 1), "wall_s": round(time.time() - start_wall, 1)}
        record = self._with_history(run_dir, record)
        record["steps"] = max([int(r["step"]) for r in record["history"]] + [0])
        diverged_at = re.search(r"diverged at step (\d+)", message)
        if diverged_at:
            record["steps"] = int(diverged_at.group(1))
        write_json(result_file, {k: v for k, v in record.items() if k != "history"})
        for extra in ("last.pth",):  # keep only the deployable weights
            (run_dir / extra).unlink(missing_ok=True)
        return record

    @staticmethod
    def _with_history(run_dir: Path, record: dict) -> dict:
        log = run_dir / "log.csv"
        history = []
        if log.is_file():
            with open(log, newline="") as handle:
                history = list(csv.DictReader(handle))
        record = dict(record, history=history)
        if record["status"] == "ok":
            record["final"] = str(run_dir / "final.pth")
        return record


def parse_grid(text: str, flag: str) -> list[float]:
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise SystemExit(f"{flag}: expected comma-separated learning rates, got {text!r}") from None
    if not values or min(values) <= 0:
        raise SystemExit(f"{flag}: learning rates must be positive, got {text!r}")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="out/exp_synth", help="output folder (data sets, runs, tables, plot)")
    parser.add_argument("--assets", default=None, help="asset directory (default: $DDFA_HOME)")
    parser.add_argument("--train-num", type=int, default=3000, help="synthetic training faces (seed 1)")
    parser.add_argument("--val-num", type=int, default=300, help="synthetic held-out faces (seed 2), reported")
    parser.add_argument("--tune-num", type=int, default=300,
                        help="synthetic validation faces (seed 3), only for choosing learning rates")
    parser.add_argument("--steps", type=int, default=1200, help="SGD steps of every full run")
    parser.add_argument("--sweep-steps", type=int, default=300, help="SGD steps of every lr-sweep run")
    parser.add_argument("--ft-steps", type=int, default=300,
                        help="VDC fine-tuning steps at the end of the wpdc+vdc schedule (WPDC gets the rest)")
    parser.add_argument("--ft-warmup", type=int, default=0, help="warm-up epochs of the VDC fine-tuning stage")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--losses", default="pdc,vdc,wpdc", help="losses to compare")
    for loss, grid in DEFAULT_GRIDS.items():
        parser.add_argument(f"--lr-{loss}", default=grid, help=f"{loss.upper()} lr grid of the sweep")
    parser.add_argument("--no-schedule", action="store_true", help="skip the WPDC-then-VDC schedule")
    parser.add_argument("--no-fallback", action="store_true",
                        help="if a full run diverges at its chosen lr, do not try the next-best lr")
    parser.add_argument("--seed", type=int, default=0, help="training seed (init, data order, augmentation)")
    parser.add_argument("--retrain", action="store_true", help="train again even runs that already have a result")
    args = parser.parse_args(argv)
    losses = [name.strip().lower() for name in args.losses.split(",") if name.strip()]
    unknown = sorted(set(losses) - set(DEFAULT_GRIDS))
    if unknown:
        raise SystemExit(f"--losses: unknown loss(es) {', '.join(unknown)}; expected pdc, vdc, wpdc")
    grids = {loss: parse_grid(getattr(args, f"lr_{loss}"), f"--lr-{loss}") for loss in losses}
    if not 0 < args.ft_steps < args.steps:
        raise SystemExit(f"--ft-steps must be in (0, --steps={args.steps}), got {args.ft_steps}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = resolve_assets(args.assets)
    t0 = time.process_time()

    # ------------------------------------------------------------------ data
    data = {}
    for name, num, seed in (("train", args.train_num, 1), ("heldout", args.val_num, 2), ("val", args.tune_num, 3)):
        folder = out / f"synth_{name}"
        if not (folder / "params.npz").is_file() or len(read_ddfa_dataset(folder)) != num:
            start = time.process_time()
            synthesize(folder, num, seed=seed, assets=store, progress=True)
            print(f"synthesised {num} {name} faces in {time.process_time() - start:.0f} s CPU", file=sys.stderr)
        data[name] = read_ddfa_dataset(folder)
    model = load_morphable_model(store, "noneck")
    baselines = {}
    for name, params in (("mean face (training-set mean params)", data["train"].params.mean(0)),
                         ("whitening mean (v2)", load_whitening(store, "v2").mean)):
        baselines[name] = {"heldout": constant_nme(params, data["heldout"].params, model),
                           "val": constant_nme(params, data["val"].params, model)}
    exp = Experiment(args, store, data, model)

    # ------------------------------------------------------------------ lr sweep (validation set)
    sweep = []
    for loss in losses:
        for lr in grids[loss]:
            rec = exp.run(out / "sweep" / f"{loss}_lr{fmt_lr(lr)}_s{args.sweep_steps}", loss=loss, lr=lr,
                          steps=args.sweep_steps, val="val")
            val_nme = exp.score(Path(rec["final"]), "val") if rec["status"] == "ok" else float("nan")
            sweep.append({"loss": loss, "lr": lr, "steps": rec["steps"], "status": rec["status"],
                          "val_nme": val_nme, "cpu_s": rec["cpu_s"]})
            print(f"sweep {loss} lr {fmt_lr(lr)}: {rec['status']}, validation NME {val_nme:.2f}% "
                  f"({rec['steps']} steps, {rec['cpu_s']:.0f} s CPU)", file=sys.stderr)
    ranked = {loss: [r["lr"] for r in sorted((r for r in sweep if r["loss"] == loss and r["status"] == "ok"),
                                             key=lambda r: r["val_nme"])] for loss in losses}
    for loss, order in ranked.items():
        if not order:
            print(f"{loss}: every lr of the sweep diverged; widen --lr-{loss}", file=sys.stderr)

    # ------------------------------------------------------------------ full runs (held-out set)
    methods: dict[str, dict] = {}
    curves: list[dict] = []

    def add_curve(method: str, history: list[dict], offset: int = 0, stage: str = "") -> None:
        for row in history:
            if row["kind"] in ("epoch", "final", "step"):
                curves.append({"method": method, "stage": stage or row.get("stage", ""), "kind": row["kind"],
                               "step": int(row["step"]) + offset, "lr": row.get("lr", ""),
                               "loss": row.get("loss", ""), "heldout_nme": row.get("val_nme", "")})

    chosen: dict[str, float] = {}
    for loss in losses:
        candidates = ranked[loss] if not args.no_fallback else ranked[loss][:1]
        tried = []
        for lr in candidates:
            rec = exp.run(out / f"run_{loss}_lr{fmt_lr(lr)}_s{args.steps}", loss=loss, lr=lr, steps=args.steps,
                          val="heldout")
            tried.append({"lr": lr, "status": rec["status"], "steps": rec["steps"], "cpu_s": rec["cpu_s"]})
            if rec["status"] == "ok":
                break
            print(f"{loss} at lr {fmt_lr(lr)} diverged in the full run: {rec['message']}", file=sys.stderr)
        if not candidates or rec["status"] != "ok":
            methods[loss.upper()] = {"heldout_nme": float("nan"), "lr": "", "steps": 0, "cpu_s": 0.0,
                                     "note": "diverged at every lr", "tried": tried}
            continue
        chosen[loss] = lr
        nme = exp.score(Path(rec["final"]), "heldout")
        methods[loss.upper()] = {"heldout_nme": nme, "lr": fmt_lr(lr), "steps": rec["steps"], "cpu_s": rec["cpu_s"],
                                 "note": "" if len(tried) == 1 else f"fell back from lr {fmt_lr(tried[0]['lr'])} "
                                 "(diverged)", "tried": tried}
        add_curve(loss.upper(), rec["history"])
        print(f"{loss}: held-out NME {nme:.2f}% after {rec['steps']} steps at lr {fmt_lr(lr)}", file=sys.stderr)

    # ------------------------------------------------------------------ 3DDFA schedule: WPDC then VDC
    if not args.no_schedule and "wpdc" in chosen and "vdc" in chosen:
        lr_w, lr_v = chosen["wpdc"], chosen["vdc"]
        first = args.steps - args.ft_steps
        rec_w = exp.run(out / f"run_wpdc_lr{fmt_lr(lr_w)}_s{first}", loss="wpdc", lr=lr_w, steps=first,
                        val="heldout")
        name = f"WPDC->VDC ({first}+{args.ft_steps})"
        if rec_w["status"] == "ok":
            rec_v = exp.run(out / f"run_wpdc_lr{fmt_lr(lr_w)}_s{first}_vdc_lr{fmt_lr(lr_v)}_s{args.ft_steps}",
                            loss="vdc", lr=lr_v, steps=args.ft_steps, val="heldout", init=Path(rec_w["final"]),
                            warmup=args.ft_warmup)
        else:
            rec_v = {"status": "diverged", "steps": 0, "cpu_s": 0.0, "history": []}
        if rec_v["status"] == "ok":
            nme = exp.score(Path(rec_v["final"]), "heldout")
            methods[name] = {"heldout_nme": nme, "lr": f"{fmt_lr(lr_w)} then {fmt_lr(lr_v)}",
                             "steps": rec_w["steps"] + rec_v["steps"], "cpu_s": rec_w["cpu_s"] + rec_v["cpu_s"],
                             "note": f"WPDC stage alone: {exp.score(Path(rec_w['final']), 'heldout'):.3f}"}
            add_curve(name, rec_w["history"], stage="wpdc")
            add_curve(name, rec_v["history"], offset=rec_w["steps"], stage="vdc")
        else:
            methods[name] = {"heldout_nme": float("nan"), "lr": f"{fmt_lr(lr_w)} then {fmt_lr(lr_v)}",
                             "steps": rec_w["steps"] + rec_v["steps"], "cpu_s": rec_w["cpu_s"] + rec_v["cpu_s"],
                             "note": "diverged"}

    # ------------------------------------------------------------------ outputs
    with open(out / "sweep.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["loss", "lr", "steps", "status", "val_nme", "cpu_s", "chosen"])
        writer.writeheader()
        for r in sweep:
            writer.writerow({**r, "lr": fmt_lr(r["lr"]), "val_nme": f"{r['val_nme']:.3f}",
                             "chosen": int(chosen.get(r["loss"]) == r["lr"])})
    with open(out / "curves.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["method", "stage", "kind", "step", "lr", "loss", "heldout_nme"])
        writer.writeheader()
        writer.writerows(curves)
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "heldout_nme_percent", "lr", "steps", "cpu_s", "note"])
        for name, value in baselines.items():
            writer.writerow([name, f"{value['heldout']:.3f}", "", 0, "", ""])
        for name, r in methods.items():
            writer.writerow([f"mb05 from scratch, {name}", f"{r['heldout_nme']:.3f}", r["lr"], r["steps"],
                             f"{r['cpu_s']:.0f}", r["note"]])
    total_cpu = time.process_time() - t0
    write_json(out / "summary.json", {
        "baselines": baselines, "methods": methods, "sweep": sweep, "chosen_lr": chosen,
        "train_num": args.train_num, "heldout_num": args.val_num, "val_num": args.tune_num,
        "batch_size": args.batch_size, "threads": args.threads, "steps": args.steps,
        "sweep_steps": args.sweep_steps, "ft_steps": args.ft_steps, "ft_warmup": args.ft_warmup,
        "seed": args.seed, "cpu_s_this_invocation": round(total_cpu, 1)})
    plot(out / "curves.png", curves, sweep, chosen, baselines, methods, args)

    mean_face = baselines["mean face (training-set mean params)"]
    print(f"\nlr sweep ({args.sweep_steps} steps each), NME (%) on the {args.tune_num}-face synthetic VALIDATION set "
          f"(mean face {mean_face['val']:.2f}):")
    for loss in losses:
        cells = [f"{fmt_lr(r['lr'])}: " + (f"{r['val_nme']:.2f}" if r["status"] == "ok" else "diverged")
                 + ("*" if chosen.get(loss) == r["lr"] else "") for r in sweep if r["loss"] == loss]
        print(f"  {loss.upper():<5s} " + ", ".join(cells))
    print(f"\nheld-out synthetic NME (%), {args.val_num} faces, 68 landmarks, norm sqrt(w*h) of the GT box; "
          f"batch {args.batch_size}, {args.threads} thread(s)")
    print(f"  {'method':<40s} {'NME %':>7s}  {'lr':>14s} {'steps':>6s} {'CPU s':>6s}")
    for name, value in baselines.items():
        print(f"  {name:<40s} {value['heldout']:7.3f}  {'':>14s} {0:>6d} {'':>6s}")
    for name, r in methods.items():
        note = f"  ({r['note']})" if r["note"] else ""
        print(f"  {'mb05 scratch ' + name:<40s} {r['heldout_nme']:7.3f}  {r['lr']:>14s} {r['steps']:>6d} "
              f"{r['cpu_s']:>6.0f}{note}")
    recorded = sum(r["cpu_s"] for r in sweep) + sum(r["cpu_s"] for r in methods.values())
    print(f"training CPU time recorded for these runs: sweep {sum(r['cpu_s'] for r in sweep):.0f} s + full runs "
          f"{sum(r['cpu_s'] for r in methods.values()):.0f} s = {recorded / 60:.1f} min")
    print(f"CPU time of this invocation {total_cpu:.0f} s (finished runs are re-used, not re-timed); outputs in {out}")
    return 0


def plot(path: Path, curves, sweep, chosen, baselines, methods, args) -> None:
    """Held-out NME curves (left) and the lr sweep's validation NME (right)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is optional
        return
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.5, 1]})
    for name in methods:
        rows = [c for c in curves if c["method"] == name and c["kind"] in ("epoch", "final")]
        if not rows:
            continue
        rows.sort(key=lambda c: c["step"])
        r = methods[name]
        ax.plot([c["step"] for c in rows], [float(c["heldout_nme"]) for c in rows], marker="o", ms=3,
                label=f"{name}, lr {r['lr']}: {r['heldout_nme']:.1f}%")
    switch = args.steps - args.ft_steps
    if any(name.startswith("WPDC->") for name in methods):
        ax.axvline(switch, color="k", lw=0.6, ls=":")
    for name, value in baselines.items():
        ax.axhline(value["heldout"], ls="--", lw=1, color="grey" if "mean face" in name else "silver",
                   label=f"{name}: {value['heldout']:.1f}%")
    ax.set_xlabel(f"SGD step (batch {args.batch_size})")
    ax.set_ylabel("held-out synthetic NME (%)")
    ax.set_title(f"mb05 from scratch, {args.steps} steps, each loss at its validated lr", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax.grid(alpha=0.3)
    colors = {"pdc": "C0", "vdc": "C1", "wpdc": "C2"}
    mean_val = baselines["mean face (training-set mean params)"]["val"]
    top = 1.25 * mean_val  # NMEs above this (a run that blew up) are drawn at the top, labelled
    for loss in dict.fromkeys(r["loss"] for r in sweep):
        rows = [r for r in sweep if r["loss"] == loss]
        ok = [r for r in rows if r["status"] == "ok"]
        bx.plot([r["lr"] for r in ok], [min(r["val_nme"], top) for r in ok], marker="o", color=colors.get(loss),
                label=loss.upper())
        for r in ok:
            if r["val_nme"] > top:
                bx.plot([r["lr"]], [top], "^", color=colors.get(loss), ms=8)
                bx.annotate(f"{r['val_nme']:.0f}", (r["lr"], top), textcoords="offset points", xytext=(0, -12),
                            ha="center", fontsize=7, color=colors.get(loss))
        bad = [r for r in rows if r["status"] != "ok"]
        if bad:
            bx.plot([r["lr"] for r in bad], [top] * len(bad), "x", color=colors.get(loss), ms=8)
        if loss in chosen:
            best = next(r for r in ok if r["lr"] == chosen[loss])
            bx.plot([best["lr"]], [best["val_nme"]], "*", color=colors.get(loss), ms=14)
    bx.axhline(mean_val, ls="--", lw=1, color="grey", label=f"mean face: {mean_val:.1f}%")
    bx.set_xscale("log")
    bx.set_ylim(0, top * 1.04)
    bx.set_xlabel("learning rate")
    bx.set_ylabel("validation synthetic NME (%)")
    bx.set_title(f"lr sweep, {args.sweep_steps} steps (*: chosen, ^: off the scale, x: NaN)", fontsize=9)
    bx.legend(fontsize=7, loc="lower left")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
