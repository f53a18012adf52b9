"""Result files, tables and CED plots; the ``ddfa benchmark`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddfa.cli.main import main
from ddfa.errors import InputError
from ddfa.eval.report import ced_curve, format_table, load_json, plot_ced, write_json


def test_ced_curve_by_hand():
    got = ced_curve(np.array([1.0, 2.0, 2.0, 5.0]), np.array([0.0, 1.0, 1.5, 2.0, 4.9, 5.0, 9.0]))
    np.testing.assert_allclose(got, [0.0, 0.25, 0.25, 0.75, 0.75, 1.0, 1.0])
    assert ced_curve(np.array([]), np.array([1.0])).tolist() == [0.0]


def test_json_round_trip_table_and_plot(aflw2000_result, tmp_path):
    """The result as written by the CLI run, read back, written and read again."""
    path = write_json(aflw2000_result, tmp_path / "run.json")
    data = json.loads(path.read_text())
    assert data["model"]["weights_sha256"].startswith("f93ed7f1")
    assert data["protocol"]["yaw_splits"]["new_pose"].endswith("AFLW2000-3D-new.pose.npy")
    back = load_json(path)
    assert back.results == aflw2000_result.results
    for name, curve in aflw2000_result.curves.items():
        np.testing.assert_allclose(back.curves[name]["errors"], curve["errors"], rtol=1e-8)
        np.testing.assert_array_equal(back.curves[name]["bins"], curve["bins"])
    table = format_table(back)
    for figure in ("2.9403", "3.8507", "4.9962", "3.9291", "3.4319", "3.5073", "1312/383/305", "3.7920"):
        assert figure in table
    png = plot_ced([aflw2000_result, back], tmp_path / "ced.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "bad.json").write_text('{"schema": "other"}')
    with pytest.raises(InputError, match="not a ddfa benchmark result"):
        load_json(tmp_path / "bad.json")


def test_cli_aflw2000_prints_the_table_and_writes_json_and_plot(cli_aflw2000):
    assert cli_aflw2000["code"] == 0
    printed, out = cli_aflw2000["stdout"], cli_aflw2000["out"]
    for line in ("ori    AFLW2000-3D.pose.npy          2.9403    3.8507    4.9962   3.9291",
                 "re     AFLW2000-3D-new.pose.npy      2.9195    3.1644    4.4380   3.5073"):
        assert line in printed
    assert "compared with" in printed and "3DDFA-reference" in printed
    result = json.loads((out / "aflw2000-3d_mb05.json").read_text())
    assert result["results"]["nme"]["ori/new_pose"]["mean_of_bins"] == pytest.approx(3.9814, abs=1e-3)
    assert result["protocol"]["batch_size"] == 128
    assert result["model"]["backend"] in ("onnxruntime", "openvino", "torch")
    assert (out / "aflw2000-3d_mb05_compare_ced.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_errors_are_one_line(assets_dir, tmp_path, capsys):
    code = main(["benchmark", "aflw2000-3d", "--assets", str(assets_dir), "--data", str(tmp_path / "missing"),
                 "--output", str(tmp_path), "--no-plot"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "missing" in err
    (tmp_path / "speed.json").write_text("{}")
    code = main(["benchmark", "aflw", "--assets", str(assets_dir), "--output", str(tmp_path), "--compare",
                 str(tmp_path / "speed.json")])
    err = capsys.readouterr().err
    assert code == 1 and "speed.json: not a ddfa benchmark result" in err and err.count("\n") == 1
