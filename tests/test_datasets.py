from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation import (DatasetError, DatasetNotFoundError, Normalize, load_dataset, proxy_batch)
from evaluation.datasets import CIFAR10_MEAN, CIFAR10_STD

SHARED = Path(__file__).resolve().parents[2] / "shared"
SUBSET = SHARED / "data" / "cifar10_subset.npz"


def test_digits_shape_range_labels():
    data = load_dataset("digits")
    assert data.x_train.shape == (1500, 3, 32, 32) and data.x_test.shape == (297, 3, 32, 32)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    assert torch.equal(data.x_train[:, 0], data.x_train[:, 2])  # grey copied to 3 channels
    assert set(data.y_train.tolist()) == set(range(10)) and data.num_classes == 10
    assert len(data.y_test) == 297
    expected_mean = float(data.x_train.mean())
    assert data.mean == pytest.approx((expected_mean,) * 3, abs=1e-5)
    assert data.std[0] == pytest.approx(float(data.x_train[:, 0].std()), abs=1e-5)
    assert load_dataset("digits") is data  # cached


def test_digits_follow_scikit_learn_order():
    from sklearn.datasets import load_digits
    digits = load_digits()
    data = load_dataset("digits")
    assert data.y_train.tolist() == digits.target[:1500].tolist()
    # each 4x4 block of the upsampled image follows the original 8x8 digit (bilinear blurs a little)
    pooled = torch.nn.functional.avg_pool2d(data.x_train[:20, :1], 4).flatten(1)
    original = torch.as_tensor(digits.images[:20] / 16.0, dtype=torch.float32).flatten(1)
    for a, b in zip(pooled, original):
        assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.95
    assert float((pooled - original).abs().mean()) < 0.1


def test_proxy_batch_first_images_or_seeded_choice():
    data = load_dataset("digits")
    images, labels = proxy_batch(data, 16)
    assert torch.equal(images, data.x_train[:16]) and torch.equal(labels, data.y_train[:16])
    a, _ = proxy_batch(data, 16, seed=3)
    b, _ = proxy_batch(data, 16, seed=3)
    c, _ = proxy_batch(data, 16, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, images)
    with pytest.raises(DatasetError):
        proxy_batch(data, 10_000)


def _write_npz(path, with_stats=False, drop=None):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
                  y_train=np.array([0, 1, 2, 0, 1, 2]),
                  x_test=rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
                  y_test=np.array([2, 1]))
    if with_stats:
        arrays.update(mean=np.array([0.1, 0.2, 0.3]), std=np.array([0.4, 0.5, 0.6]))
    if drop:
        del arrays[drop]
    np.savez(path, **arrays)
    return arrays


def test_npz_loader(tmp_path):
    arrays = _write_npz(tmp_path / "small.npz")
    data = load_dataset("npz", data_path=tmp_path / "small.npz")
    expected = torch.from_numpy(arrays["x_train"]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(data.x_train, expected)
    assert data.x_test.shape == (2, 3, 32, 32)
    assert data.y_train.tolist() == [0, 1, 2, 0, 1, 2] and data.y_train.dtype == torch.int64
    assert data.num_classes == 3
    assert data.mean == CIFAR10_MEAN and data.std == CIFAR10_STD


def test_npz_statistics_from_the_file(tmp_path):
    _write_npz(tmp_path / "stats.npz", with_stats=True)
    data = load_dataset("npz", data_path=tmp_path / "stats.npz")
    assert data.mean == pytest.approx((0.1, 0.2, 0.3)) and data.std == pytest.approx((0.4, 0.5, 0.6))


def test_npz_missing_key_and_missing_file(tmp_path):
    _write_npz(tmp_path / "broken.npz", drop="y_test")
    with pytest.raises(DatasetError, match="lacks y_test"):
        load_dataset("npz", data_path=tmp_path / "broken.npz")
    with pytest.raises(DatasetNotFoundError, match="not found"):
        load_dataset("npz", data_path=tmp_path / "absent.npz")
    with pytest.raises(DatasetError, match="data_path"):
        load_dataset("npz")


def test_npz_cifar10_subset_matches_the_file():
    if not SUBSET.is_file():
        pytest.skip("../shared/data not present")
    data = load_dataset("npz", data_path=SUBSET)
    raw = np.load(SUBSET)
    first = torch.from_numpy(raw["x_train"][:16]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(data.x_train[:16], first)
    assert data.y_train[:16].tolist() == raw["y_train"][:16].tolist()
    assert data.x_train.shape == (4660, 3, 32, 32) and data.x_test.shape == (846, 3, 32, 32)
    assert data.num_classes == 10 and data.classes[0] == "airplane"
    assert data.mean == CIFAR10_MEAN


@pytest.mark.parametrize("name, cls", [("cifar10", "CIFAR10"), ("cifar100", "CIFAR100"), ("svhn", "SVHN")])
def test_torchvision_sets_are_never_downloaded_unasked(tmp_path, monkeypatch, name, cls):
    import torchvision.datasets as tvd

    def forbidden(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(getattr(tvd, cls), "download", forbidden)
    with pytest.raises(DatasetNotFoundError, match="download=true"):
        load_dataset(name, root=tmp_path, download=False)
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset_name():
    with pytest.raises(DatasetError, match="unknown data set 'mnist'"):
        load_dataset("mnist")


def test_normalize_module():
    x = torch.rand(2, 3, 4, 4)
    module = Normalize((0.1, 0.2, 0.3), (0.5, 0.25, 2.0))
    expected = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(module(x), expected)
