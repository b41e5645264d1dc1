"""Image data: the IDX reader on the real Fashion-MNIST files, IDX edge cases, class folders."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unireplknet.data import (
    FASHION_MNIST_CLASSES,
    FashionMNIST,
    ImageFolderDataset,
    TensorAugment,
    find_fashion_mnist,
    read_idx,
    scan_class_folders,
)


def write_idx(path: Path, array: np.ndarray, code: int = 0x08) -> None:
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_real_fashion_mnist_files() -> None:
    root = find_fashion_mnist()
    images, labels = read_idx(root / "t10k-images-idx3-ubyte.gz"), read_idx(root / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [1000] * 10
    assert FASHION_MNIST_CLASSES[labels[0]] == "Ankle boot"


def test_idx_round_trip_and_errors(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, data, code=0x0C)
        np.testing.assert_array_equal(read_idx(tmp_path / name), data)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "a.idx").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_from_any_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 4)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    assert find_fashion_mnist(tmp_path) == tmp_path
    dataset = FashionMNIST(tmp_path, "test", size=32)
    image, label = dataset[1]
    assert len(dataset) == 4 and image.shape == (1, 32, 32) and 0 <= label < 10
    plain = FashionMNIST(tmp_path, "train", indices=[5])
    expected = (torch.from_numpy(read_idx(tmp_path / "train-images-idx3-ubyte")[5]).float() / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(plain[0][0][0], expected)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.*apt-get install dataset-fashion-mnist"):
        find_fashion_mnist(tmp_path)


def test_tensor_augment() -> None:
    image = torch.arange(16.0).view(1, 4, 4)
    flipped = TensorAugment(pad=0, hflip=1.0)(image)
    torch.testing.assert_close(flipped, image.flip(-1))
    shifted = [TensorAugment(pad=1, hflip=0.0)(image) for _ in range(30)]
    assert all(s.shape == image.shape for s in shifted)
    assert any(not torch.equal(s, image) for s in shifted) and any(torch.equal(s, image) for s in shifted)


def test_class_folders(tmp_path: Path) -> None:
    for cls, n in (("b_dog", 2), ("a_cat", 3)):
        (tmp_path / cls / "sub").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (5, 5)).save(tmp_path / cls / ("sub" if i else "") / f"{i}.png")
    (tmp_path / "a_cat" / "notes.txt").write_text("not an image")
    items, classes = scan_class_folders(tmp_path)
    assert classes == ["a_cat", "b_dog"] and [label for _, label in items] == [0, 0, 0, 1, 1]
    dataset = ImageFolderDataset(tmp_path, transform=lambda im: im.size, mode="L")
    assert dataset[0] == ((5, 5), 0)
    with pytest.raises(ValueError, match="training split lacks: b_dog"):
        scan_class_folders(tmp_path, classes=["a_cat"])
    (tmp_path / "c_empty").mkdir()
    with pytest.raises(ValueError, match="c_empty holds no images"):
        scan_class_folders(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        scan_class_folders(tmp_path / "nope")
    (tmp_path / "c_empty").rmdir()
    (tmp_path / "a_cat" / "0.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"cannot read image .*0\.png"):
        ImageFolderDataset(tmp_path)[0]


def test_debian_file_prefers_installed_then_unpacked_copy(tmp_path, monkeypatch):
    from unireplknet.data.sources import debian_file

    monkeypatch.setenv("UNIREPLKNET_CACHE", str(tmp_path / "cache"))
    installed = tmp_path / "root" / "usr" / "share" / "pkg" / "data.bin"
    absent = Path("/nonexistent-unireplknet-test/usr/share/pkg/data.bin")
    unpacked = tmp_path / "cache" / "debian" / absent.relative_to("/")
    with pytest.raises(ValueError, match=r"data\.bin of Debian's some-pkg .*setup\.sh.*dpkg -x"):
        debian_file(absent, "some-pkg")
    unpacked.parent.mkdir(parents=True)
    unpacked.write_bytes(b"x")
    assert debian_file(absent, "some-pkg") == unpacked
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"y")
    assert debian_file(installed, "some-pkg") == installed
