"""Data for ``visionblocks train``: an ImageFolder tree, the CIFAR-10/100 python archives, or the scikit-learn digits.

``--data`` names one of:

* a directory ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (``.jpg .jpeg .png .bmp .gif .tif .tiff .webp``),
  decoded with Pillow.  Train and val must have the same classes.  **Unreadable images are skipped and counted**:
  every file's header is read once at start; files Pillow cannot identify are left out, and the count (with the
  first such path) is reported.  A file whose header reads but whose pixels do not decode stops the run with an
  error naming it.
* the CIFAR-10 or CIFAR-100 python archive as downloaded (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``)
  or its extracted directory (``cifar-10-batches-py/``, ``cifar-100-python/``), or a directory holding one of them.
  The pickles are read with an unpickler that only builds numpy arrays (no arbitrary code).
* ``digits``: the 1,797 handwritten 8x8 digits that ship with scikit-learn (offline), upscaled (bilinear) to the
  input size (default 32); a fixed 80/20 split per class (seed 0).

Augmentation (train split): a random-resized crop (ImageFolder; scale 0.08-1, ratio 3/4-4/3) or a pad-and-crop
(CIFAR, digits; pad 1/8 of the size), then a horizontal flip (probability ``hflip``; 0 for digits, whose mirror
images are other shapes).  Evaluation: resize to ``size / crop_pct`` and centre crop (ImageFolder), or the image as
is.  Normalisation: ``mean``/``std`` of :func:`visionblocks.resolve_data_config` (averaged over the channels when
the data has another channel count than the config).

Randomness: each sample's augmentation draws from its own generator seeded by ``(seed, epoch, index)``, so a run
is the same with any number of DataLoader workers or processes, and a resumed run draws what the uninterrupted one
drew.
"""
from __future__ import annotations

import importlib
import io
import math
import os
import pickle
import random
import tarfile
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from .errors import TrainError

__all__ = [
    "IMAGE_EXTENSIONS", "DataInfo", "ImageFolderDataset", "TensorImageDataset", "load_data", "sample_rng",
    "ShardSampler", "scan_image_folder", "load_cifar", "load_digits", "data_source",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class DataInfo:
    """What the data set is: its kind (``folder``, ``cifar10``, ``cifar100``, ``digits``), class names, channels,
    the input size used, the sizes of the splits and how many unreadable files were skipped."""

    kind: str
    classes: list[str]
    in_chans: int
    input_size: int
    num_train: int
    num_val: int
    skipped: int = 0
    first_skipped: str = ""
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of one sample's augmentation in one epoch."""
    return random.Random((seed * 1_000_003 + epoch) * 1_000_000_007 + index)


def _norm_stats(data_cfg: dict[str, Any], channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = tuple(data_cfg.get("mean", (0.5,))), tuple(data_cfg.get("std", (0.5,)))
    if len(mean) != channels:
        mean = (sum(mean) / len(mean),) * channels
    if len(std) != channels:
        std = (sum(std) / len(std),) * channels
    return torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)


class _Augmented(Dataset):
    """Shared part: the epoch (set before each epoch's iterator is made) and normalisation."""

    def __init__(self, train: bool, size: int, data_cfg: dict[str, Any], channels: int, seed: int, hflip: float):
        self.train, self.size, self.seed, self.hflip = train, size, seed, hflip
        self.mean, self.std = _norm_stats(data_cfg, channels)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(C, H, W) uint8 -> normalised float32."""
        return (x.float().div_(255.0) - self.mean) / self.std


class TensorImageDataset(_Augmented):
    """Images held in memory as one (N, C, H, W) uint8 tensor (CIFAR, digits); train: pad-and-crop and flip."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, train: bool, data_cfg: dict[str, Any],
                 seed: int = 0, hflip: float = 0.5, pad: int | None = None):
        super().__init__(train, images.shape[-1], data_cfg, images.shape[1], seed, hflip)
        self.images, self.labels = images, labels
        self.pad = max(1, images.shape[-1] // 8) if pad is None else pad

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index]
        if self.train:
            rng = sample_rng(self.seed, self.epoch, index)
            p, s = self.pad, self.size
            i, j = rng.randint(0, 2 * p), rng.randint(0, 2 * p)
            x = F.pad(x, (p, p, p, p))[:, i:i + s, j:j + s]
            if rng.random() < self.hflip:
                x = x.flip(-1)
        return self.normalize(x), int(self.labels[index])


class ImageFolderDataset(_Augmented):
    """(path, label) pairs decoded with Pillow; train: random-resized crop and flip; eval: resize and centre crop."""

    def __init__(self, samples: Sequence[tuple[str, int]], train: bool, size: int, data_cfg: dict[str, Any],
                 channels: int = 3, seed: int = 0, hflip: float = 0.5, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        super().__init__(train, size, data_cfg, channels, seed, hflip)
        self.samples = list(samples)
        self.mode = "L" if channels == 1 else "RGB"
        self.crop_pct = float(data_cfg.get("crop_pct", 0.875))
        self.interpolation = str(data_cfg.get("interpolation", "bilinear"))
        self.scale, self.ratio = scale, ratio

    def __len__(self) -> int:
        return len(self.samples)

    def _resample(self) -> int:
        from PIL import Image
        return {"bicubic": Image.BICUBIC, "nearest": Image.NEAREST}.get(self.interpolation, Image.BILINEAR)

    def _crop_box(self, w: int, h: int, rng: random.Random) -> tuple[float, float, float, float]:
        area = w * h
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            ar = math.exp(rng.uniform(*log_r))
            cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
            if 0 < cw <= w and 0 < ch <= h:
                left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
                return left, top, left + cw, top + ch
        side = min(w, h)  # fallback: the central square
        return (w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        path, label = self.samples[index]
        try:
            with Image.open(path) as im:
                im = _eight_bit(im).convert(self.mode)
        except Exception as e:  # header read at scan time, pixels do not decode
            raise TrainError(f"cannot decode image {path}: {type(e).__name__}: {e}") from None
        w, h = im.size
        s = self.size
        if self.train:
            rng = sample_rng(self.seed, self.epoch, index)
            im = im.resize((s, s), self._resample(), box=self._crop_box(w, h, rng))
            if rng.random() < self.hflip:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            short = int(math.floor(s / self.crop_pct))
            scale = short / min(w, h)
            nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
            im = im.resize((nw, nh), self._resample())
            left, top = (nw - s) // 2, (nh - s) // 2
            im = im.crop((left, top, left + s, top + s))
        x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        x = x.view(s, s, -1).permute(2, 0, 1)
        return self.normalize(x), label


def _eight_bit(im):
    """``im`` with 8-bit values: Pillow's ``convert`` clips a 16-bit image (mode ``I;16``, or ``I`` as a 16-bit PNG
    opens) at 255 and truncates a float one (``F``, values in [0, 1]) to 0, so a 16-bit photo trained as a white
    image and a float TIFF as a black one.  16-bit values are scaled by 255/65535; float values by 255 when they lie
    in [0, 1] (else taken as 0-255)."""
    if im.mode.startswith("I;16"):
        im = im.convert("I")
    if im.mode == "I":
        return im.point(lambda v: v * (255 / 65535)).convert("L")
    if im.mode == "F":
        scale = 255.0 if im.getextrema()[1] <= 1.0 else 1.0
        return im.point(lambda v: v * scale).convert("L")
    return im


class ShardSampler(Sampler[int]):
    """Evaluation order: indices ``rank, rank + world, ...`` (no padding, so every sample counts once over the
    ranks)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


# ------------------------------------------------------------------------------------------------ ImageFolder
def _need(module: str, data: str, package: str) -> Any:
    """``import module``, or a TrainError naming the extra that brings it (``data``: the kind of --data)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TrainError(f"--data {data} needs {package}: pip install 'visionblocks[train]'") from None


def _classes_of(split_dir: str) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def scan_image_folder(split_dir: str, classes: list[str]) -> tuple[list[tuple[str, int]], int, str]:
    """(path, label) of every readable image under ``split_dir/<class>/`` (recursively), the number of files with an
    image extension that Pillow cannot identify (skipped), and the first such path."""
    Image = _need("PIL.Image", "DIR (a folder of images)", "Pillow")
    UnidentifiedImageError = Image.UnidentifiedImageError
    samples, skipped, first = [], 0, ""
    for label, c in enumerate(classes):
        for root, dirs, files in os.walk(os.path.join(split_dir, c)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # (.ipynb_checkpoints: no samples of c)
            for f in sorted(files):
                if not f.lower().endswith(IMAGE_EXTENSIONS) or f.startswith("."):
                    continue
                p = os.path.join(root, f)
                try:
                    with Image.open(p) as im:
                        im.size  # noqa: B018 (the header is read by open)
                except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                    skipped += 1
                    first = first or p
                    continue
                samples.append((p, label))
    return samples, skipped, first


def _load_folder(root: str, in_chans: int):
    split = {}
    for name in ("train", "val"):
        d = os.path.join(root, name)
        if not os.path.isdir(d):
            raise TrainError(f"data directory {root} has no {name}/ folder (expected {root}/train/<class>/*.jpg and "
                             f"{root}/val/<class>/*.jpg, a CIFAR archive, or 'digits')")
        split[name] = _classes_of(d)
    if not split["train"]:
        raise TrainError(f"data directory {root}/train has no class folders")
    if split["train"] != split["val"]:
        only_t = sorted(set(split["train"]) - set(split["val"]))
        only_v = sorted(set(split["val"]) - set(split["train"]))
        raise TrainError(f"train and val classes differ in {root}: only in train: {only_t[:5]}, only in val: "
                         f"{only_v[:5]}")
    classes = split["train"]
    train, sk_t, first_t = scan_image_folder(os.path.join(root, "train"), classes)
    val, sk_v, first_v = scan_image_folder(os.path.join(root, "val"), classes)
    for name, s in (("train", train), ("val", val)):
        if not s:
            raise TrainError(f"data directory {root}/{name} holds no readable images "
                             f"(extensions: {' '.join(IMAGE_EXTENSIONS)})")
    seen = {label for _, label in train}
    empty = [c for i, c in enumerate(classes) if i not in seen]
    if empty:  # (its val images would count as errors, and top-5 be trivial)
        raise TrainError(f"class {empty[0]!r} has no readable training image in {root}/train/{empty[0]}"
                         + (f" (nor {len(empty) - 1} other classes)" if len(empty) > 1 else "")
                         + ": remove the folder from train/ and val/, or add images")
    return classes, train, val, sk_t + sk_v, first_t or first_v


# ------------------------------------------------------------------------------------------------ CIFAR
class _ArrayUnpickler(pickle.Unpickler):
    """Builds only what the CIFAR pickles hold: dicts, lists, bytes, numpy arrays."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR pickle")


def _unpickle(data: bytes, where: str) -> dict:
    try:
        d = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:
        raise TrainError(f"cannot read CIFAR pickle {where}: {type(e).__name__}: {e}") from None
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _cifar_files(path: str) -> dict[str, bytes] | None:
    """The member files (basename -> bytes) of a CIFAR archive or directory, or None if ``path`` is not one."""
    if os.path.isfile(path) and (path.endswith((".tar.gz", ".tgz", ".tar"))):
        try:
            with tarfile.open(path) as tf:
                out = {}
                for m in tf.getmembers():
                    if m.isfile():
                        out[os.path.basename(m.name)] = tf.extractfile(m).read()
                return out
        except (tarfile.TarError, OSError, EOFError) as e:
            raise TrainError(f"cannot read archive {path}: {e}") from None
    if os.path.isdir(path):
        names = set(os.listdir(path))
        if "test_batch" in names or ("train" in names and "meta" in names):
            out = {}
            for n in names:
                if n.startswith(("data_batch_", "test_batch", "batches.meta")) or n in ("train", "test", "meta"):
                    with open(os.path.join(path, n), "rb") as f:
                        out[n] = f.read()
            return out
        for sub in ("cifar-10-batches-py", "cifar-100-python", "cifar-10-python.tar.gz", "cifar-100-python.tar.gz"):
            if sub in names:
                return _cifar_files(os.path.join(path, sub))
    return None


def load_cifar(path: str) -> tuple[str, list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(kind, classes, train images, train labels, val images, val labels) of a CIFAR-10/100 python archive, or None
    when ``path`` is not one.  Images are (N, 3, 32, 32) uint8."""
    files = _cifar_files(path)
    if files is None:
        return None
    np = _need("numpy", "<a CIFAR archive>", "numpy")

    def arrays(names: list[str], key: str):
        xs, ys = [], []
        for n in names:
            d = _unpickle(files[n], f"{path}:{n}")
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[key], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    if "test_batch" in files:
        batches = sorted(n for n in files if n.startswith("data_batch_"))
        if not batches:
            raise TrainError(f"CIFAR-10 archive {path} has no data_batch_* files")
        meta = _unpickle(files["batches.meta"], f"{path}:batches.meta") if "batches.meta" in files else {}
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get("label_names", [])]
        xt, yt = arrays(batches, "labels")
        xv, yv = arrays(["test_batch"], "labels")
        kind = "cifar10"
    elif "train" in files and "test" in files:
        meta = _unpickle(files["meta"], f"{path}:meta") if "meta" in files else {}
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get("fine_label_names", [])]
        xt, yt = arrays(["train"], "fine_labels")
        xv, yv = arrays(["test"], "fine_labels")
        kind = "cifar100"
    else:
        raise TrainError(f"{path} looks like a CIFAR archive but lacks its test split")
    n = int(max(yt.max(), yv.max())) + 1
    if len(classes) < n:
        classes = [str(i) for i in range(n)]
    return kind, classes, xt, yt, xv, yv


# ------------------------------------------------------------------------------------------------ digits
def load_digits(size: int = 32) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits upscaled (bilinear) to ``size``: (classes, train x, train y, val x, val y), images
    (N, 1, size, size) uint8, 80/20 split per class with seed 0."""
    d = _need("sklearn.datasets", "digits", "scikit-learn").load_digits()
    x = torch.from_numpy(d.images).float().unsqueeze(1) * (255.0 / 16.0)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.round().clamp_(0, 255).to(torch.uint8)
    y = torch.from_numpy(d.target).long()
    g = torch.Generator().manual_seed(0)
    val_mask = torch.zeros(len(y), dtype=torch.bool)
    for c in range(10):
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        val_mask[idx[: len(idx) // 5]] = True
    return [str(i) for i in range(10)], x[~val_mask], y[~val_mask], x[val_mask], y[val_mask]


# ------------------------------------------------------------------------------------------------ entry point
def _subset(ds: Dataset, limit: int | None) -> Dataset:
    """At most ``limit`` samples of ``ds``: a fixed random choice (seed 0), in their original order."""
    n = len(ds)
    if limit is None or limit >= n:
        return ds
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:limit].sort().values
    if isinstance(ds, TensorImageDataset):
        ds.images, ds.labels = ds.images[keep], ds.labels[keep]
    else:
        ds.samples = [ds.samples[i] for i in keep.tolist()]
    return ds


def data_source(data: str) -> str:
    """``--data`` as a run records it: ``digits``, or the absolute path of the folder or archive (a run resumed from
    another working directory reads the same data, and ``./data`` and its absolute path are one run's data)."""
    if not isinstance(data, str) or data in ("", "digits"):
        return data
    return os.path.abspath(data)


def load_data(data: str, data_cfg: dict[str, Any], *, input_size: int | None = None, in_chans: int | None = None,
              seed: int = 0, hflip: float | None = None, limit: int | None = None) -> tuple[Dataset, Dataset, DataInfo]:
    """The train and val datasets named by ``data`` (see the module docstring) and their :class:`DataInfo`.

    ``input_size`` defaults to the data's own size (CIFAR 32, digits 32) or the model's (``data_cfg``) for an
    ImageFolder tree; ``in_chans`` to the data's channels (digits 1, CIFAR 3, ImageFolder 3); ``limit`` keeps at
    most that many images of each split (a fixed random choice: quick checks)."""
    train, val, info = _load_data(data, data_cfg, input_size, in_chans, seed, hflip)
    if limit is not None:
        train, val = _subset(train, limit), _subset(val, limit)
        info.num_train, info.num_val = len(train), len(val)
    return train, val, info


def _load_data(data: str, data_cfg: dict[str, Any], input_size: int | None, in_chans: int | None, seed: int,
               hflip: float | None) -> tuple[Dataset, Dataset, DataInfo]:
    if not data:
        raise TrainError("--data is required (an ImageFolder directory, a CIFAR archive, or 'digits')")
    if data == "digits":
        size = input_size or 32
        if in_chans not in (None, 1):
            raise TrainError("digits are grayscale: in_chans must be 1")
        classes, xt, yt, xv, yv = load_digits(size)
        flip = 0.0 if hflip is None else hflip
        train = TensorImageDataset(xt, yt, True, data_cfg, seed, flip)
        val = TensorImageDataset(xv, yv, False, data_cfg, seed, flip)
        return train, val, DataInfo("digits", classes, 1, size, len(train), len(val), source="digits")
    if not os.path.exists(data):
        raise TrainError(f"data path {data} does not exist (an ImageFolder directory, a CIFAR archive, or 'digits')")
    cifar = load_cifar(data)
    if cifar is not None:
        kind, classes, xt, yt, xv, yv = cifar
        if in_chans not in (None, 3):
            raise TrainError(f"CIFAR images are RGB: in_chans must be 3, got {in_chans}")
        size = input_size or 32
        if size != 32:
            xt, xv = (F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)
                      .round().clamp_(0, 255).to(torch.uint8) for x in (xt, xv))
        flip = 0.5 if hflip is None else hflip
        train = TensorImageDataset(xt, yt, True, data_cfg, seed, flip)
        val = TensorImageDataset(xv, yv, False, data_cfg, seed, flip)
        return train, val, DataInfo(kind, classes, 3, size, len(train), len(val), source=os.path.abspath(data))
    if not os.path.isdir(data):
        raise TrainError(f"data path {data} is neither a directory nor a CIFAR archive")
    chans = in_chans or 3
    if chans not in (1, 3):
        raise TrainError(f"ImageFolder data is decoded as RGB (3) or grayscale (1); got in_chans={chans}")
    classes, ts, vs, skipped, first = _load_folder(data, chans)
    size = input_size or int(tuple(data_cfg.get("input_size", (3, 224, 224)))[-1])
    flip = 0.5 if hflip is None else hflip
    train = ImageFolderDataset(ts, True, size, data_cfg, chans, seed, flip)
    val = ImageFolderDataset(vs, False, size, data_cfg, chans, seed, flip)
    info = DataInfo("folder", classes, chans, size, len(train), len(val), skipped, first, os.path.abspath(data))
    if skipped:
        info.notes.append(f"skipped {skipped} unreadable image(s) (first: {first})")
    return train, val, info
