"""Train mb05 (MobileNet-V1 x0.5) from scratch on synthetic faces with PDC, VDC and WPDC.

    python experiments/train_synthetic.py --out out/exp_synth

1. renders a training set and a held-out set with ``ddfa synth`` (different seeds);
2. scores two constant baselines on the held-out set: the mean face (the training set's mean
   parameters) and the whitening mean;
3. trains one mb05 from scratch per loss for the same number of SGD steps (same data, batch,
   schedule and seed), validating on the held-out set every epoch (a run whose
   ``OUT/run_LOSS/final.pth`` exists is not trained again unless ``--retrain``);
4. scores each run's final weights on the held-out set, prints a summary and writes ``curves.csv``, ``summary.csv`` and ``curves.png`` to ``--out``.

Everything runs on the CPU with ``--threads`` torch threads (default 1) and no loader workers, so
the budget is single-core CPU time. Nothing is trained or tuned on AFLW / AFLW2000-3D.

Learning rates: PDC and WPDC use 3DDFA's 0.02. VDC from scratch diverged (NaN within 15 steps)
at 0.02, 2e-3, 2e-4 and 2e-5 in a 36-step probe on a separate synthetic set and was stable at
5e-6, which is used here (3DDFA only ever fine-tuned with VDC, at 1e-5).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ddfa.assets import resolve_assets
from ddfa.morphable import load_morphable_model, load_whitening
from ddfa.nets.registry import create_model
from ddfa.train.config import TrainConfig
from ddfa.train.data import read_ddfa_dataset
from ddfa.train.metrics import landmark_nme
from ddfa.train.synth import synthesize
from ddfa.train.trainer import TrainingError, train

LOSS_LR = {"pdc": 0.02, "vdc": 5e-6, "wpdc": 0.02}


def constant_nme(params: np.ndarray, targets: np.ndarray, model) -> float:
    """Mean NME (%) of predicting ``params`` ((62,) for every face, or (N, 62)) for the held-out faces."""
    tm = model.to_torch()
    target = torch.as_tensor(targets)
    pred = torch.as_tensor(params, dtype=torch.float32).expand_as(target)
    return 100.0 * float(landmark_nme(pred, target, tm).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/exp_synth")
    parser.add_argument("--assets", default=None)
    parser.add_argument("--train-num", type=int, default=3000)
    parser.add_argument("--val-num", type=int, default=300)
    parser.add_argument("--steps", type=int, default=1200, help="SGD steps per loss")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses", default="pdc,vdc,wpdc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true",
                        help="train again even where OUT/run_LOSS/final.pth exists (else only re-score it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = resolve_assets(args.assets)
    t0 = time.process_time()

    data = {}
    for name, num, seed in (("train", args.train_num, 1), ("heldout", args.val_num, 2)):
        folder = out / f"synth_{name}"
        if not (folder / "params.npz").is_file() or len(read_ddfa_dataset(folder)) != num:
            start = time.process_time()
            synthesize(folder, num, seed=seed, store=store, progress=True)
            print(f"synthesised {num} {name} faces in {time.process_time() - start:.0f} s CPU", file=sys.stderr)
        data[name] = read_ddfa_dataset(folder)
    model = load_morphable_model(store, "noneck")
    held = data["heldout"].params
    baselines = {
        "mean face (training-set mean params)": constant_nme(data["train"].params.mean(0), held, model),
        "whitening mean (v2)": constant_nme(load_whitening(store, "v2").mean, held, model),
    }

    steps_per_epoch = args.train_num // args.batch_size
    epochs = math.ceil(args.steps / steps_per_epoch)
    milestones = [max(2, round(0.7 * epochs)), max(3, round(0.9 * epochs))]
    results, curves = {}, []
    for loss in args.losses.split(","):
        run_dir = out / f"run_{loss}"
        timing = run_dir / "time.json"
        if args.retrain or not (run_dir / "final.pth").is_file():
            cfg = TrainConfig.from_dict(dict(
                train=str(out / "synth_train"), val=str(out / "synth_heldout"), out=str(run_dir),
                width=0.5, loss=loss, lr=LOSS_LR[loss], batch_size=args.batch_size, epochs=epochs,
                milestones=milestones, warmup=1, max_steps=args.steps, num_workers=0, threads=args.threads,
                device="cpu", seed=args.seed, assets=str(store.root), checkpoints="last", log_every=25,
                progress=False))
            start_wall, start_cpu = time.time(), time.process_time()
            try:
                train(cfg)
            except TrainingError as exc:
                print(f"{loss}: {exc}", file=sys.stderr)
                results[loss] = {"final_nme": float("nan"), "best_nme": float("nan"), "steps": 0,
                                 "cpu_s": round(time.process_time() - start_cpu, 1), "lr": LOSS_LR[loss]}
                continue
            timing.write_text(json.dumps({"wall_s": round(time.time() - start_wall, 1),
                                          "cpu_s": round(time.process_time() - start_cpu, 1)}))
        with open(run_dir / "log.csv", newline="") as handle:
            history = list(csv.DictReader(handle))
        # the weights the run ended with, scored on the held-out set (as the trainer validates)
        regressor = create_model(str(run_dir / "final.pth"), assets=store, backend="torch")
        crops = np.stack([cv2.imread(str(p)) for p in data["heldout"].paths])
        final_nme = constant_nme(regressor(crops), held, model)
        steps = max(int(r["step"]) for r in history)
        epoch_nmes = [float(r["val_nme"]) for r in history if r["kind"] == "epoch"]
        cpu = json.loads(timing.read_text())["cpu_s"] if timing.is_file() else None
        results[loss] = {"final_nme": final_nme, "best_nme": min(epoch_nmes + [final_nme]), "steps": steps,
                         "cpu_s": cpu, "lr": LOSS_LR[loss]}
        for row in history:
            if row["kind"] != "final":
                curves.append({"loss_fn": loss, **{k: row.get(k) for k in ("kind", "epoch", "step", "lr", "loss",
                                                                            "val_nme")}})
        curves.append({"loss_fn": loss, "kind": "final", "step": steps, "val_nme": final_nme})
        print(f"{loss}: held-out NME {final_nme:.2f}% after {steps} steps", file=sys.stderr)

    with open(out / "curves.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["loss_fn", "kind", "epoch", "step", "lr", "loss", "val_nme"])
        writer.writeheader()
        writer.writerows(curves)
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "heldout_nme_percent", "best_nme_percent", "steps", "lr", "cpu_s"])
        for name, value in baselines.items():
            writer.writerow([name, f"{value:.3f}", "", 0, "", ""])
        for loss, r in results.items():
            writer.writerow([f"mb05 from scratch, {loss.upper()}", f"{r['final_nme']:.3f}", f"{r['best_nme']:.3f}",
                             r["steps"], r["lr"], "" if r["cpu_s"] is None else r["cpu_s"]])
    (out / "summary.json").write_text(json.dumps({"baselines": baselines, "runs": results,
                                                  "train_num": args.train_num, "val_num": args.val_num,
                                                  "batch_size": args.batch_size, "threads": args.threads,
                                                  "epochs": epochs, "milestones": milestones}, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for loss in results:
            rows = [c for c in curves if c["loss_fn"] == loss and c["kind"] in ("epoch", "final")]
            ax.plot([r["step"] for r in rows], [float(r["val_nme"]) for r in rows], marker="o", ms=3,
                    label=loss.upper())
        for name, value in baselines.items():
            ax.axhline(value, ls="--", lw=1, color="grey" if "mean face" in name else "silver", label=name)
        ax.set_xlabel("SGD step (batch %d)" % args.batch_size)
        ax.set_ylabel("held-out synthetic NME (%)")
        ax.set_title("mb05 from scratch on synthetic faces (CPU, %d thread)" % args.threads)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "curves.png", dpi=120)
    except ImportError:  # matplotlib is optional
        pass

    print(f"\nheld-out synthetic NME (%), {args.val_num} faces, 68 landmarks, norm sqrt(w*h) of GT box")
    for name, value in baselines.items():
        print(f"  {name:<40s} {value:7.3f}")
    for loss, r in results.items():
        cpu = f", {r['cpu_s']:.0f} s CPU" if r["cpu_s"] is not None else ""
        print(f"  mb05 scratch {loss.upper():<27s} {r['final_nme']:7.3f}  (best {r['best_nme']:.3f}, "
              f"{r['steps']} steps, lr {r['lr']}{cpu})")
    print(f"total CPU time {time.process_time() - t0:.0f} s; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
