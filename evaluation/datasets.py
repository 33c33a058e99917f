"""Data sets by name, as float tensors in [0, 1] with the statistics to normalise them.

Every loader returns the same :class:`Dataset` layout (N x 3 x H x W float32 images in
[0, 1], int64 labels), so proxies, training and attacks never care where the images came
from. Loaded data sets are cached in-process because a search reads the same batch many
times; treat the returned tensors as read-only.

Nothing is downloaded unless the caller passes ``download=True``.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)

DIGITS_TRAIN = 1500  # of scikit-learn's 1,797 digits; the rest is the test split
DATASETS = ("digits", "cifar10", "cifar100", "svhn", "npz")
DEFAULT_ROOT = Path("~/.cache/trnas/data")


class DatasetError(ValueError):
    """A data set name, file or array layout that cannot be used."""


class DatasetNotFoundError(DatasetError):
    """The data set is not on disk (and downloading was not asked for)."""


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple
    std: tuple
    num_classes: int
    classes: tuple

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, test={tuple(self.x_test.shape)}, "
                f"num_classes={self.num_classes})")


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, so a model can take [0, 1] images: attacks clamp
    to [0, 1] and therefore need the normalisation inside the model."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class NormalizedNet(nn.Module):
    """``body`` behind a :class:`Normalize`: takes images in [0, 1], so an attack's ε is in
    pixel units (the proxies' networks and every trained model)."""

    def __init__(self, body: nn.Module, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.body = body

    def forward(self, x):
        return self.body(self.normalize(x))


_CACHE: dict = {}


def load_dataset(name: str, root=None, download: bool = False, data_path=None) -> Dataset:
    """Load a data set by name: ``digits`` (embedded, no download), ``cifar10``, ``cifar100``,
    ``svhn`` (torchvision under ``root``; default ``~/.cache/trnas/data``) or ``npz``
    (``data_path`` to a file with ``x_train``, ``y_train``, ``x_test``, ``y_test``: N x H x W x 3
    uint8 images and integer labels). An npz file is normalised with CIFAR-10's mean and std
    unless it carries ``mean`` and ``std`` arrays of its own."""
    name = str(name).lower()
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r} (available: {', '.join(DATASETS)})")
    if name == "npz":
        if data_path is None:
            raise DatasetError("data set 'npz' needs data_path= pointing to an .npz file")
        path = Path(data_path).expanduser().resolve()
        if not path.is_file():
            raise DatasetNotFoundError(f"npz data set not found: {path}")
        stat = path.stat()
        # the file may be rewritten between calls; its size and time stamp key the cache
        key = (name, str(path), stat.st_mtime_ns, stat.st_size)
    elif name == "digits":
        key = (name,)
    else:
        root = Path(root if root is not None else DEFAULT_ROOT).expanduser().resolve()
        key = (name, str(root))
    if key not in _CACHE:
        if name == "digits":
            _CACHE[key] = _load_digits()
        elif name == "npz":
            _CACHE[key] = _load_npz(path)
        else:
            _CACHE[key] = _load_torchvision(name, root, download)
    return _CACHE[key]


def proxy_batch(dataset: Dataset, n_images: int, seed=None):
    """The batch a proxy scores with: the first ``n_images`` training images (``seed=None``,
    the deterministic default) or a seeded random choice without replacement."""
    total = len(dataset.x_train)
    n_images = int(n_images)
    if not 0 < n_images <= total:
        raise DatasetError(f"proxy batch of {n_images} images requested, but {dataset.name!r} has {total} "
                           "training images")
    if seed is None:
        index = torch.arange(n_images)
    else:
        generator = torch.Generator().manual_seed(int(seed))
        index = torch.randperm(total, generator=generator)[:n_images]
    return dataset.x_train[index], dataset.y_train[index]


# ----- loaders -----
def _channel_stats(images: torch.Tensor) -> tuple:
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3))
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    # bilinear interpolation is a convex combination, so the result stays in [0, 1]
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = images.clamp_(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    x_train, x_test = images[:DIGITS_TRAIN], images[DIGITS_TRAIN:]
    mean, std = _channel_stats(x_train)
    return Dataset("digits", x_train, labels[:DIGITS_TRAIN], x_test, labels[DIGITS_TRAIN:], mean, std,
                   10, tuple(str(i) for i in range(10)))


def _hwc_to_tensor(array: np.ndarray, what: str) -> torch.Tensor:
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise DatasetError(f"{what}: expected N x H x W x 3 images, got shape {array.shape}")
    if array.dtype == np.uint8:
        images = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float().div_(255.0)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise DatasetError(f"{what}: images must be finite numbers in [0, 1], found NaN or infinity")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise DatasetError(f"{what}: float images must lie in [0, 1] (uint8 images are divided by 255)")
        images = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(0, 3, 1, 2)
    else:
        raise DatasetError(f"{what}: images must be uint8 (0..255) or float in [0, 1], got {array.dtype}")
    return images.expand(-1, 3, -1, -1).contiguous()


def _labels(array: np.ndarray, what: str) -> torch.Tensor:
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{what}: expected a 1-D integer label array, got shape {array.shape}, {array.dtype}")
    if array.size and array.min() < 0:
        raise DatasetError(f"{what}: labels must be >= 0")
    return torch.from_numpy(array.astype(np.int64))


def _member(arrays, name: str, path: Path) -> np.ndarray:
    """One array of an npz file; an object array (a pickle) or a damaged member is refused."""
    try:
        return arrays[name]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DatasetError(f"{path}: array {name!r} is not readable ({str(error).splitlines()[0]})") from None


def _load_npz(path: Path) -> Dataset:
    """CIFAR-10-like arrays. Normalisation statistics are CIFAR-10's unless the file has
    ``mean`` and ``std`` arrays (3 values each); class names come from ``classes`` if present."""
    # np.load guesses the format from the first bytes and takes anything else for a pickle
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path} is not a readable npz file (an .npz is a zip archive of arrays, as numpy.savez writes)")
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path} is not a readable npz file ({error})") from None
    with arrays:
        needed = ("x_train", "y_train", "x_test", "y_test")
        missing = [k for k in needed if k not in arrays.files]
        if missing:
            raise DatasetError(f"npz data set {path} lacks {', '.join(missing)} (it has {', '.join(arrays.files)})")
        x_train = _hwc_to_tensor(_member(arrays, "x_train", path), f"{path.name}: x_train")
        x_test = _hwc_to_tensor(_member(arrays, "x_test", path), f"{path.name}: x_test")
        y_train = _labels(_member(arrays, "y_train", path), f"{path.name}: y_train")
        y_test = _labels(_member(arrays, "y_test", path), f"{path.name}: y_test")
        if len(x_train) != len(y_train) or len(x_test) != len(y_test):
            raise DatasetError(f"npz data set {path}: image and label counts differ "
                               f"({len(x_train)}/{len(y_train)} train, {len(x_test)}/{len(y_test)} test)")
        if "mean" in arrays.files and "std" in arrays.files:
            mean = tuple(float(v) for v in np.asarray(_member(arrays, "mean", path)).ravel())
            std = tuple(float(v) for v in np.asarray(_member(arrays, "std", path)).ravel())
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise DatasetError(f"npz data set {path}: mean/std must be 3 values each, std > 0")
        else:
            mean, std = CIFAR10_MEAN, CIFAR10_STD
        n_labels = int(torch.cat([y_train, y_test]).max()) + 1 if len(y_train) + len(y_test) else 0
        if "classes" in arrays.files:
            classes = tuple(str(c) for c in np.asarray(_member(arrays, "classes", path)).ravel())
            if len(classes) < n_labels:
                raise DatasetError(f"npz data set {path}: {len(classes)} class names for labels up to {n_labels - 1}")
        else:
            classes = tuple(str(i) for i in range(n_labels))
    return Dataset("npz", x_train, y_train, x_test, y_test, mean, std, len(classes), classes)


_TORCHVISION = {
    "cifar10": ("CIFAR10", "CIFAR-10", CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": ("CIFAR100", "CIFAR-100", CIFAR100_MEAN, CIFAR100_STD),
    "svhn": ("SVHN", "SVHN", SVHN_MEAN, SVHN_STD),
}


def _load_torchvision(name: str, root: Path, download: bool) -> Dataset:
    import torchvision.datasets as tvd
    class_name, pretty, mean, std = _TORCHVISION[name]
    factory = getattr(tvd, class_name)
    splits = ({"split": "train"}, {"split": "test"}) if name == "svhn" else ({"train": True}, {"train": False})
    try:
        if download:
            os.makedirs(root, exist_ok=True)
        train, test = (factory(root=str(root), download=bool(download), **split) for split in splits)
    except (RuntimeError, OSError) as error:  # not found / corrupt; or a failed download (URLError)
        if download:
            raise DatasetError(f"{pretty} could not be downloaded to {root}: {error}") from None
        raise DatasetNotFoundError(f"{pretty} not found under {root}; pass download=true to fetch it "
                                   "(or root= pointing to a folder that holds it)") from None
    if name == "svhn":
        x_train = torch.from_numpy(train.data).float().div_(255.0)
        x_test = torch.from_numpy(test.data).float().div_(255.0)
        y_train, y_test = torch.as_tensor(train.labels, dtype=torch.int64), torch.as_tensor(test.labels, dtype=torch.int64)
        classes = tuple(str(i) for i in range(10))
    else:
        x_train, x_test = _hwc_to_tensor(train.data, pretty), _hwc_to_tensor(test.data, pretty)
        y_train, y_test = torch.as_tensor(train.targets, dtype=torch.int64), torch.as_tensor(test.targets, dtype=torch.int64)
        classes = tuple(train.classes)
    return Dataset(name, x_train, y_train, x_test, y_test, mean, std, len(classes), classes)
