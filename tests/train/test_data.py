"""Training data: both formats, augmentation that keeps parameters consistent, the loader."""

from __future__ import annotations

import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from ddfa.errors import InputError, UnsafePickleError
from ddfa.morphable import load_whitening, model_to_crop
from ddfa.morphable.params import coefficients
from ddfa.train.data import (
    AugmentConfig,
    CropDataset,
    augment,
    jitter_matrix,
    jitter_params,
    make_loader,
    read_3ddfa_dataset,
    read_ddfa_dataset,
    read_source,
    write_3ddfa_dataset,
)


def test_ddfa_format_reads_back(synth_train):
    src = read_ddfa_dataset(synth_train)
    assert len(src) == 48 and src.params.shape == (48, 62) and src.params.dtype == np.float32
    assert all(p.is_file() for p in src.paths)
    ds = CropDataset(src)
    image, params = ds[3]
    assert image.shape == (3, 120, 120) and image.dtype == torch.float32
    raw = cv2.imread(str(src.paths[3]))
    np.testing.assert_allclose(image.numpy(), (raw.transpose(2, 0, 1) - 127.5) / 128, atol=1e-6)  # BGR
    np.testing.assert_array_equal(params.numpy(), src.params[3])


def test_3ddfa_format_matches_ddfa_format(synth_train, store):
    """``ddfa synth --format both`` wrote 3DDFA's list + v1-whitened pickle of the same faces."""
    v1 = load_whitening(store, "v1")
    ours = read_ddfa_dataset(synth_train)
    theirs = read_3ddfa_dataset(synth_train, synth_train / "train.list", synth_train / "param_all_norm.pkl", v1)
    assert [p.resolve() for p in theirs.paths] == [p.resolve() for p in ours.paths]
    np.testing.assert_allclose(v1.whiten(theirs.params), v1.whiten(ours.params), atol=1e-5)
    spec = {"format": "3ddfa", "root": str(synth_train), "list": str(synth_train / "train.list"),
            "params": str(synth_train / "param_all_norm.pkl")}
    assert len(read_source([spec, str(synth_train)], store=store)) == 96


def test_3ddfa_pickle_is_loaded_safely(tmp_path, store):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "x.list").write_text("a.jpg\n")
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump(Evil(), handle)
    with pytest.raises(UnsafePickleError):
        read_3ddfa_dataset(tmp_path, tmp_path / "x.list", tmp_path / "evil.pkl", load_whitening(store, "v1"))
    write_3ddfa_dataset(tmp_path, ["a.jpg", "b.jpg"], np.zeros((2, 62), np.float32), load_whitening(store, "v1"))
    (tmp_path / "train.list").write_text("a.jpg\n")
    with pytest.raises(InputError, match="2 parameter rows for 1 images"):
        read_3ddfa_dataset(tmp_path, tmp_path / "train.list", tmp_path / "param_all_norm.pkl",
                           load_whitening(store, "v1"))


def test_bad_dataset_folders(tmp_path):
    with pytest.raises(InputError, match="not a ddfa dataset"):
        read_ddfa_dataset(tmp_path)
    np.savez(tmp_path / "params.npz", params=np.zeros((2, 61), np.float32), names=np.array(["a", "b"]))
    with pytest.raises(InputError, match=r"\(N, 62\)"):
        read_ddfa_dataset(tmp_path)


def test_crop_jitter_moves_parameters_with_the_pixels(synth_train, noneck_model):
    """The landmarks of the updated parameters are the warped landmarks, and cv2 moves pixels the same way."""
    src = read_ddfa_dataset(synth_train)
    rng = np.random.default_rng(0)
    cfg = AugmentConfig(shift=0.1, scale=0.2, rotate=20.0)
    for params in src.params[:8]:
        matrix = jitter_matrix(rng, cfg)
        before = model_to_crop(noneck_model.landmarks(params.astype(np.float64)))
        after = model_to_crop(noneck_model.landmarks(jitter_params(params, matrix).astype(np.float64)))
        expected = before[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        np.testing.assert_allclose(after[:, :2], expected, atol=2e-3)
        scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
        np.testing.assert_allclose(after[:, 2] - after[:, 2].mean(), scale * (before[:, 2] - before[:, 2].mean()),
                                   atol=2e-3)
    # a bright dot at a landmark lands where the transformed landmark is
    dot = np.zeros((120, 120, 3), np.uint8)
    cv2.circle(dot, (60, 50), 2, (255, 255, 255), -1)
    matrix = jitter_matrix(np.random.default_rng(3), cfg)
    warped = cv2.warpAffine(dot, matrix, (120, 120), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(warped[..., 0] > 0)
    w = warped[ys, xs, 0].astype(np.float64)
    centre = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
    np.testing.assert_allclose(centre, matrix[:, :2] @ [60, 50] + matrix[:, 2], atol=0.15)


def test_augmentation_is_seeded_per_sample_and_epoch(synth_train):
    src = read_ddfa_dataset(synth_train)
    ds = CropDataset(src, AugmentConfig(noise=2.0, rotate=5.0), seed=7)
    a_img, a_par = ds[5]
    b_img, b_par = ds[5]
    torch.testing.assert_close(a_img, b_img)
    torch.testing.assert_close(a_par, b_par)
    assert not torch.equal(a_par, torch.from_numpy(src.params[5]))  # crop jitter moved the pose
    ds.set_epoch(1)
    c_img, c_par = ds[5]
    assert not torch.equal(a_img, c_img) and not torch.equal(a_par, c_par)
    assert torch.equal(coefficients(c_par), coefficients(a_par))  # shape / expression never change
    image, params = augment(ds.image(0), src.params[0], np.random.default_rng(0), AugmentConfig(
        brightness=0.5, contrast=0.5, saturation=0.5, gray=1.0, shift=0, scale=0))
    assert image.min() >= 0 and image.max() <= 255
    np.testing.assert_allclose(image[..., 0], image[..., 2])  # grayscale
    np.testing.assert_array_equal(params, src.params[0])  # photometric only: parameters unchanged


def test_ranks_split_the_single_process_batches(synth_train):
    """Rank r's k-th batch of b + the other rank's == the k-th batch of 2b of one process."""
    ds = CropDataset(read_ddfa_dataset(synth_train))
    single = make_loader(ds, 8, shuffle=True, seed=3, num_workers=0)
    ranks = [make_loader(ds, 4, shuffle=True, seed=3, rank=r, world_size=2, num_workers=0) for r in (0, 1)]
    for loader in (single, *ranks):
        loader.sampler.set_epoch(2)
    batches = [list(loader.sampler) for loader in (single, *ranks)]
    for k in range(len(batches[0]) // 8):
        expected = sorted(batches[0][8 * k:8 * k + 8])
        got = sorted(batches[1][4 * k:4 * k + 4] + batches[2][4 * k:4 * k + 4])
        assert got == expected
    images, params = next(iter(make_loader(ds, 8, shuffle=True, seed=3, num_workers=2)))
    assert images.shape == (8, 3, 120, 120) and params.shape == (8, 62)


def test_loader_workers_after_opencv_threads_in_this_process(synth_train):
    """Forked loader workers of a process that has used OpenCV's thread pool (as one that also
    aligned photos has) used to hang for ever (cv2.setNumThreads in the child waits for the
    parent's pool threads)."""
    code = (
        "import sys\n"
        "import cv2, numpy as np\n"
        "from ddfa.train.data import AugmentConfig, CropDataset, make_loader, read_ddfa_dataset\n"
        "big = np.zeros((2000, 2000, 3), np.uint8)\n"
        "for _ in range(5):  # OpenCV's thread pool at work in this process\n"
        "    cv2.warpAffine(big, np.float32([[1, 0.1, 3], [0.1, 1, 2]]), (2000, 2000))\n"
        "ds = CropDataset(read_ddfa_dataset(sys.argv[1]), AugmentConfig(rotate=5.0), seed=7)\n"
        "for _ in range(3):\n"
        "    images, _ = next(iter(make_loader(ds, 8, shuffle=True, seed=3, num_workers=2)))\n"
        "    assert images.shape == (8, 3, 120, 120)\n")
    done = subprocess.run([sys.executable, "-c", code, str(synth_train)], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
