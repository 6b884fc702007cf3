"""Fixtures of the training tests: tiny data sets made on the spot (PIL-drawn PNGs, a CIFAR-format pickle)."""
import os
import pickle

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")


def draw_png(path: str, cls: int, i: int, size: int = 12) -> None:
    """A class-coloured square with a bright bar whose place depends on the class: learnable, distinct images."""
    from PIL import Image, ImageDraw
    im = Image.new("RGB", (size + i % 3, size), ((60 * cls) % 256, 40 + 10 * i % 200, 90))
    d = ImageDraw.Draw(im)
    d.rectangle([cls * 3 % size, 0, cls * 3 % size + 2, size - 1], fill=(250, 250, 250))
    im.save(path)


def make_folder(root, classes=("cat", "dog"), per_class=(6, 3), val_classes=None) -> str:
    for split, n, cls_names in (("train", per_class[0], classes), ("val", per_class[1], val_classes or classes)):
        for c, name in enumerate(cls_names):
            d = os.path.join(root, split, name)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                draw_png(os.path.join(d, f"{i}.png"), c, i)
    return str(root)


def make_cifar10(root, n_train=20, n_test=10) -> str:
    d = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(d)
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": [int(v) for v in rng.integers(0, 10, n)]}, f)
    with open(os.path.join(d, "batches.meta"), "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return d


@pytest.fixture
def folder_data(tmp_path):
    return make_folder(tmp_path / "data")
