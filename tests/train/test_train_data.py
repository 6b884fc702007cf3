"""Data of visionblocks train: ImageFolder (unreadable files skipped and counted), CIFAR pickles, digits, augmentation."""
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from conftest import make_cifar10, make_folder
from visionblocks.train.data import load_data
from visionblocks.train.errors import TrainError

CFG = {"input_size": (3, 224, 224), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "crop_pct": 0.875,
       "interpolation": "bilinear"}


def test_image_folder(folder_data):
    train, val, info = load_data(folder_data, CFG, input_size=16, seed=0)
    assert info.kind == "folder" and info.classes == ["cat", "dog"] and info.in_chans == 3
    assert (len(train), len(val), info.skipped) == (12, 6, 0)
    x, y = train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 0
    xv, yv = val[5]
    assert xv.shape == (3, 16, 16) and yv == 1
    # normalisation from the data config: the white bar of an eval image is (1 - mean) / std
    assert torch.isclose(xv[2].amax(), torch.tensor((1 - 0.406) / 0.225), atol=0.2)  # resizing blurs a little


def test_image_folder_grayscale(folder_data):
    train, _, info = load_data(folder_data, CFG, input_size=8, in_chans=1)
    assert info.in_chans == 1 and train[3][0].shape == (1, 8, 8)


def test_unreadable_images_are_skipped_and_counted(folder_data):
    bad = os.path.join(folder_data, "train", "cat", "broken.png")
    with open(bad, "wb") as f:
        f.write(b"not a png at all")
    train, _, info = load_data(folder_data, CFG, input_size=16)
    assert info.skipped == 1 and info.first_skipped == bad and len(train) == 12
    assert any("skipped 1 unreadable" in n for n in info.notes)


def test_augmentation_is_a_function_of_seed_epoch_index(folder_data):
    train, _, _ = load_data(folder_data, CFG, input_size=16, seed=3)
    a = train[4][0]
    assert torch.equal(a, train[4][0])  # the same draw again
    train.set_epoch(1)
    assert not torch.equal(a, train[4][0])  # another epoch, another crop
    train.set_epoch(0)
    assert torch.equal(a, train[4][0])


def test_cifar10_directory_and_archive(tmp_path):
    d = make_cifar10(tmp_path)
    for path in (str(tmp_path), d):
        train, val, info = load_data(path, CFG, seed=0)
        assert info.kind == "cifar10" and info.classes[:2] == ["c0", "c1"] and info.input_size == 32
        assert (len(train), len(val)) == (20, 10) and train[0][0].shape == (3, 32, 32)
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
    train, val, info = load_data(str(tgz), CFG)
    assert info.kind == "cifar10" and len(train) == 20
    with open(os.path.join(d, "data_batch_1"), "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    want = torch.from_numpy(raw[b"data"][7].reshape(3, 32, 32))
    assert torch.equal(val.images.new_tensor(train.images[7]), want)


def test_cifar100(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 8), ("test", 4)):
        with open(d / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": [int(v) for v in rng.integers(0, 100, n)], b"coarse_labels": [0] * n}, f)
    with open(d / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)]}, f)
    train, val, info = load_data(str(tmp_path), CFG, input_size=16)
    assert info.kind == "cifar100" and info.num_classes == 100 and train[0][0].shape == (3, 16, 16)


def test_cifar_pickle_cannot_run_code(tmp_path):
    d = make_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(os.path.join(d, "test_batch"), "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(TrainError, match="refusing to load"):
        load_data(d, CFG)


def test_digits():
    pytest.importorskip("sklearn")
    train, val, info = load_data("digits", CFG)
    assert info.kind == "digits" and info.in_chans == 1 and info.num_classes == 10
    assert (len(train), len(val)) == (1442, 355) and train[0][0].shape == (1, 32, 32)
    counts = torch.bincount(val.labels, minlength=10)
    assert counts.min() >= 30  # a fifth of every class
    _, _, small = load_data("digits", CFG, input_size=16, limit=50)
    assert (small.num_train, small.num_val, small.input_size) == (50, 50, 16)


def test_bad_data_paths(tmp_path):
    with pytest.raises(TrainError, match="does not exist"):
        load_data(str(tmp_path / "nope"), CFG)
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(TrainError, match="no class folders"):
        load_data(str(tmp_path), CFG)
    mismatched = make_folder(tmp_path / "m", classes=("a", "b"), val_classes=("a", "c"))
    with pytest.raises(TrainError, match="train and val classes differ"):
        load_data(mismatched, CFG)


def _gradient(mode, hi):
    from PIL import Image
    arr = np.linspace(0, hi, 24 * 24).reshape(24, 24)
    im = Image.fromarray(arr.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
    assert im.mode == mode
    return im


@pytest.mark.parametrize("mode,hi", [("I;16", 65535), ("I", 65535), ("F", 1.0)])
def test_sixteen_bit_and_float_images_keep_their_values(tmp_path, mode, hi):
    # Pillow's convert clips 16-bit values at 255 (a 16-bit photo trained as a white image) and truncates floats in
    # [0, 1] to 0 (a black one); the gradient now keeps its range
    from visionblocks.train.data import _eight_bit
    im = _eight_bit(_gradient(mode, hi))
    lo, top = im.convert("L").getextrema()
    assert lo == 0 and top >= 254 and len(set(im.convert("L").getdata())) > 200


def test_hidden_subfolders_and_classes_without_training_images(folder_data):
    from PIL import Image
    hidden = os.path.join(folder_data, "train", "dog", ".ipynb_checkpoints")
    os.makedirs(hidden)
    Image.new("RGB", (8, 8)).save(os.path.join(hidden, "0-checkpoint.png"))
    train, _, _ = load_data(folder_data, CFG, input_size=8)
    assert len(train) == 12 and not any(".ipynb" in p for p, _ in train.samples)  # not a sample of dog
    for split in ("train", "val"):  # a class folder whose training images are all unreadable, or none
        os.makedirs(os.path.join(folder_data, split, "eel"))
    with open(os.path.join(folder_data, "train", "eel", "x.png"), "wb") as f:
        f.write(b"")
    Image.new("RGB", (8, 8)).save(os.path.join(folder_data, "val", "eel", "v.png"))
    with pytest.raises(TrainError, match=r"class 'eel' has no readable training image in .*train/eel"):
        load_data(folder_data, CFG, input_size=8)


def test_a_decompression_bomb_header_is_skipped_and_counted(folder_data):
    # Pillow raises DecompressionBombError (an Exception, not an OSError) from the header: it escaped the scan
    import struct
    import zlib
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bad = os.path.join(folder_data, "train", "cat", "bomb.png")  # a 30000 x 30000 header over a few bytes of data
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    from PIL import Image
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bad)
    train, _, info = load_data(folder_data, CFG, input_size=8)
    assert info.skipped == 1 and info.first_skipped == bad and len(train) == 12
