"""The trainer: schedule, checkpoints loadable everywhere, exact resume, fine-tuning from mb05."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddfa.assets import load_torch_checkpoint
from ddfa.errors import InputError
from ddfa.train.config import TrainConfig
from ddfa.train.trainer import Trainer, train


def test_lr_schedule_is_3ddfas():
    """train_wpdc.sh: warm-up epochs 1-5 at 0.2 x lr, then lr, x0.2 after epochs 30 and 40."""
    stage = TrainConfig().stage_list()[0]
    assert (stage.loss, stage.batch_size, stage.resample_num, stage.epochs) == ("wpdc", 512, 132, 50)
    lrs = [stage.lr_at(e) for e in range(1, 51)]
    assert lrs[0] == lrs[4] == pytest.approx(0.004)
    assert lrs[5] == lrs[29] == pytest.approx(0.02)
    assert lrs[30] == lrs[39] == pytest.approx(0.004)
    assert lrs[40] == lrs[49] == pytest.approx(0.0008)


def test_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: data/x\nlr: 0.5\nstages:\n  - {loss: wpdc}\n  - {loss: vdc, lr: 1.0e-5, warmup: 0}\n")
    cfg = TrainConfig.from_yaml(path, {"lr": 0.1, "epochs": None})
    assert cfg.lr == 0.1 and cfg.epochs == 50
    stages = cfg.stage_list()
    assert [s.loss for s in stages] == ["wpdc", "vdc"] and stages[1].lr == 1e-5 and stages[0].lr == 0.1
    with pytest.raises(InputError, match="unknown training config key"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(InputError, match="unknown loss"):
        TrainConfig.from_dict({"loss": "l2"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="mapping"):
        TrainConfig.from_yaml(bad)


def test_train_writes_checkpoints_that_load_everywhere(tiny_config, assets_dir, example_images):
    import ddfa
    from ddfa.nets.registry import create_model

    cfg = tiny_config(max_steps=3)
    result = train(cfg)
    assert result.steps == 3 and result.stopped_early
    losses = result.train_losses
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert result.history[-1]["kind"] == "final" and result.val_nme > 0  # the end weights are validated
    # last.pth holds the resume state and loads with weights_only=True
    obj = torch.load(result.last, map_location="cpu", weights_only=True)
    assert obj["train_state"]["step"] == 3 and "optimizer" in obj["train_state"]
    # the final checkpoint is a ddfa model: create_model, FaceAligner and the V2 export load it
    final = load_torch_checkpoint(result.final)
    assert final["ddfa"]["width"] == 0.25 and final["ddfa"]["whitening"]["name"] == "v2"
    regressor = create_model(str(result.final), assets=assets_dir, backend="torch")
    crops = np.random.default_rng(0).integers(0, 255, (2, 120, 120, 3), dtype=np.uint8)
    params = regressor(crops)
    assert params.shape == (2, 62) and np.all(np.isfinite(params))
    v2 = create_model(str(result.out / "final_v2.pth"), assets=assets_dir, backend="torch", whitening="v2")
    np.testing.assert_allclose(v2(crops), params, rtol=1e-5, atol=1e-6)
    aligner = ddfa.FaceAligner(model=str(result.final), assets=assets_dir, backend="torch")
    faces = aligner(str(example_images["JianzhuGuo.jpg"]))
    assert len(faces) == 1 and faces[0].landmarks.shape[0] == 68


def test_resume_continues_the_same_trajectory(tiny_config, tmp_path):
    """6 steps in one go == 4 steps (mid-epoch stop), resume, 2 more: same losses and weights."""
    full = train(tiny_config(out=str(tmp_path / "full"), max_steps=6))
    part = train(tiny_config(out=str(tmp_path / "part"), max_steps=4))
    assert part.stopped_early and part.steps == 4
    resumed = train(tiny_config(out=str(tmp_path / "part"), max_steps=6, resume="auto"))
    assert resumed.steps == 6
    np.testing.assert_allclose(resumed.train_losses, full.train_losses, rtol=1e-6)
    a = load_torch_checkpoint(full.final)["state_dict"]
    b = load_torch_checkpoint(resumed.final)["state_dict"]
    for key in a:
        np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), rtol=1e-6, atol=1e-7, err_msg=key)


def test_two_stages_wpdc_then_vdc(tiny_config):
    cfg = tiny_config(epochs=1, stages=[{"loss": "wpdc", "lr": 0.01}, {"loss": "vdc", "lr": 1e-5, "warmup": 0}])
    result = train(cfg)
    steps = [row for row in result.history if row["kind"] == "step"]
    assert {row["stage"] for row in steps} == {"0-wpdc", "1-vdc"}
    assert {row["lr"] for row in steps if row["stage"] == "1-vdc"} == {1e-5}
    epochs = [row for row in result.history if row["kind"] == "epoch"]
    assert len(epochs) == 2 and all(row["val_nme"] > 0 for row in epochs)


def test_finetune_from_mb05(tiny_config, assets_dir):
    from ddfa.nets.registry import create_model

    trainer = Trainer(tiny_config(init="mb05", width=None, max_steps=1))
    assert trainer.width == 0.5 and trainer.whitening.name == "v2"
    mb05 = create_model("mb05", assets=assets_dir, backend="torch").net.state_dict()
    for key, value in trainer.net.state_dict().items():
        torch.testing.assert_close(value, mb05[key])
    # the pretrained model is far better than chance on synthetic faces
    nme = trainer.validate()
    assert nme < 15.0
    result = trainer.run()
    assert result.steps == 1
    with pytest.raises(InputError, match="width"):
        Trainer(tiny_config(init="mb05", width=1.0))
    with pytest.raises(InputError, match="whitening"):
        Trainer(tiny_config(init="mb05", width=None, whitening="v1"))


def test_bad_inputs_are_reported(tiny_config, tmp_path):
    with pytest.raises(InputError, match="not a ddfa dataset"):
        Trainer(tiny_config(train=str(tmp_path)))
    with pytest.raises(InputError, match="fewer than one batch"):
        train(tiny_config(batch_size=4096))
    with pytest.raises(InputError, match="not found"):
        train(tiny_config(resume=str(tmp_path / "nope.pth")))


def test_cli_config_file_with_flag_overrides(synth_train, assets_dir, tmp_path, capsys):
    import yaml

    from ddfa.cli.main import main

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "train": str(synth_train), "val_fraction": 0.25, "width": 0.25, "batch_size": 8, "epochs": 5,
        "lr": 0.5, "num_workers": 0, "assets": str(assets_dir), "progress": False, "checkpoints": "last",
    }))
    out = tmp_path / "cli"
    code = main(["train", str(config), "--out", str(out), "--lr", "0.01", "--epochs", "1", "--milestones", "1",
                 "--loss", "pdc", "--threads", "1", "--set", "augment={shift: 0.02, scale: 0.0}"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "trained 4 steps" in printed and "validation NME" in printed  # 36 train / 12 held-out crops
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["lr"] == 0.01 and saved["epochs"] == 1 and saved["loss"] == "pdc"
    assert saved["milestones"] == [1] and saved["augment"] == {"shift": 0.02, "scale": 0.0}
    assert (out / "final.pth").is_file() and (out / "log.csv").is_file()
    assert main(["train", "--out", str(out), "--assets", str(assets_dir)]) == 1
    assert "no training data" in capsys.readouterr().err


def test_example_configs_are_valid():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "configs"
    paths = sorted(folder.glob("*.yaml"))
    assert len(paths) >= 3
    for path in paths:
        cfg = TrainConfig.from_yaml(path)
        assert cfg.stage_list()
    stages = TrainConfig.from_yaml(folder / "3ddfa_wpdc_vdc.yaml").stage_list()
    assert [(s.loss, s.lr, s.warmup) for s in stages] == [("wpdc", 0.02, 5), ("vdc", 1e-5, 0)]
