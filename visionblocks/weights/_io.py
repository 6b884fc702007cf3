"""Reading a checkpoint: a path, an http(s)/file URL or an in-memory mapping, to a flat state dict.

http(s) URLs go through torch's own hub cache (``torch.hub.get_dir()/checkpoints``, the directory
``torch.hub.load_state_dict_from_url`` uses, keyed as there by the URL's file name): a file downloaded once is
reused.  A ``file://`` URL names a local file and is read in place, as its path would be (a copy in the cache would
go stale when the file changes, and two files of one name would share it).  ``sha256=`` verifies the file
(a full hex digest, or a prefix of one, as torchvision's file names carry) *before* anything is unpickled or
loaded.  Torch files are always read with ``weights_only=True``; safetensors files need the ``safetensors``
package.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import url2pathname

import torch

from .errors import CheckpointError, ChecksumError

__all__ = ["read_checkpoint", "unwrap_state_dict", "is_url", "sha256_of"]

_WRAPPER_KEYS = ("state_dict", "model", "module", "net", "params")
_EMA_KEYS = ("model_ema", "state_dict_ema", "ema")
_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel / DataParallel, torch.compile


def is_url(source: Any) -> bool:
    return isinstance(source, str) and urlparse(source).scheme in ("http", "https", "file")


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_sha256(path: str, sha256: str | None, what: str) -> None:
    if sha256 is None:
        return
    if not isinstance(sha256, str) or not sha256 or any(c not in "0123456789abcdefABCDEF" for c in sha256):
        raise ValueError(f"sha256 must be a hex digest or a prefix of one, got {sha256!r}")
    expected = sha256.lower()
    digest = sha256_of(path)
    if not digest.startswith(expected):
        raise ChecksumError(f"sha256 of {what} is {digest}, expected {expected}: refusing to load it "
                            f"(nothing was loaded; delete {path!r} if it is a damaged copy)")


def _file_url_path(url: str) -> str:
    """The local path a ``file://`` URL names (``file:///tmp/w.pth`` -> ``/tmp/w.pth``)."""
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise CheckpointError(f"{url}: a file:// URL names a file on this machine (file:///path), got host "
                              f"{parsed.netloc!r}")
    return url2pathname(parsed.path)


def _cached_url(url: str, sha256: str | None, progress: bool, model_dir: str | None, file_name: str | None) -> str:
    """The local copy of the http(s) ``url`` in torch's hub cache, downloading it (sha256-checked) when absent."""
    model_dir = model_dir or os.path.join(torch.hub.get_dir(), "checkpoints")
    os.makedirs(model_dir, exist_ok=True)
    cached = os.path.join(model_dir, file_name or _cache_name(url))
    if not os.path.exists(cached):
        # downloaded next to its place (torch writes a temporary file and renames it when complete), checked whole,
        # then renamed into place: no half-written or cut-short copy is cached.  The temporary name is this call's
        # own (threads of one process downloading the same URL each rename a whole file into place)
        part = f"{cached}.{os.getpid()}-{secrets.token_hex(4)}.part"
        try:
            torch.hub.download_url_to_file(url, part, hash_prefix=sha256.lower() if sha256 else None,
                                           progress=progress)
        except RuntimeError as e:
            if "invalid hash value" in str(e):
                raise ChecksumError(f"sha256 of {url} does not match {sha256}: {e} (nothing was loaded)") from e
            raise
        except (URLError, OSError) as e:
            raise CheckpointError(f"cannot download {url}: {getattr(e, 'reason', e)} (nothing was loaded)") from e
        _check_complete(part, url)
        os.replace(part, cached)
    else:
        _check_sha256(cached, sha256, f"{url} (cached at {cached})")
        why = _damage(cached)
        if why:
            raise CheckpointError(f"the cached copy of {url} is damaged: {why}; delete {cached} to download it "
                                  f"again (nothing was loaded)")
    return cached


def _cache_name(url: str) -> str:
    """The cache's file name of an http(s) ``url`` given without ``file_name``: its base name after a digest of
    the whole URL, so that two URLs ending in the same name (``.../resolve/main/model.safetensors``) are two
    files, not one whose weights the second load silently reuses."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    return f"{digest}-{os.path.basename(urlparse(url).path) or 'checkpoint'}"


def _safetensors_header_fits(head: bytes, size: int) -> bool:
    """Whether ``head`` (a file's first 9 bytes, of a file of ``size`` bytes) starts a safetensors file: a
    little-endian u64 header length that fits in the file, then the header's JSON object."""
    return len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size


def _is_safetensors(path: str) -> bool:
    """By content first (a torch.save zip archive or pickle named ``.safetensors`` is read as what it is), by the
    ``.safetensors`` extension for a file too short or damaged to tell.  The safetensors signature is tested first:
    its header length's first byte is 0x80 in about one file of 32, the byte a pickle starts with."""
    with open(path, "rb") as f:
        head = f.read(9)
    if _safetensors_header_fits(head, os.path.getsize(path)):
        return True
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return False
    return path.endswith(".safetensors")


def _check_complete(path: str, url: str) -> None:
    """Refuse a download that is not a whole checkpoint (a connection cut short is saved as a shorter file, which
    torch's download does not notice): see :func:`_damage`.  The file is removed."""
    why = _damage(path)
    if why:
        os.remove(path)
        raise CheckpointError(f"the download of {url} is incomplete or damaged: {why}; nothing was cached, try again")


def _damage(path: str) -> str | None:
    """Why the file at ``path`` is not a whole checkpoint, or None: a zip archive (torch.save's) must have its
    central directory and every member's CRC right (``torch.load`` checks neither: damaged bytes inside a tensor
    load as wrong values), a safetensors file its header and the data it describes.  A pickle (or anything else)
    is read as it is."""
    with open(path, "rb") as f:
        head = f.read(9)
    size = os.path.getsize(path)
    why = None
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            why = f"its member {bad!r} fails its CRC" if bad else None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            why = f"a zip archive without its end ({e})"
    elif _safetensors_header_fits(head, size) or (len(head) == 9 and head[8:9] == b"{" and head[:1] != b"\x80"):
        n = int.from_bytes(head[:8], "little")
        try:
            with open(path, "rb") as f:
                f.seek(8)
                header = json.loads(f.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            why = None if 8 + n + end == size else f"{size} bytes where its header describes {8 + n + end}"
        except (ValueError, KeyError, TypeError, IndexError) as e:
            why = f"a safetensors header that does not parse ({e})"
    return why


def _load_safetensors(path: str) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as e:
        raise CheckpointError(f"{path} is a safetensors file: install the 'safetensors' package "
                              f"(pip install 'visionblocks[safetensors]') to read it") from e
    try:
        return load_file(path, device="cpu")
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for a damaged file
        raise CheckpointError(f"cannot read {path} as a safetensors file: {e}") from e


def _torch_load(path: str) -> Any:
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive ("PK\x03\x04"); before torch 1.6, and with _use_new_zipfile_serialization=False,
    # a pickle (protocol byte 0x80); anything else is not a torch checkpoint
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        found = f"it starts with {head!r}" if head else "it is empty"
        raise CheckpointError(f"{path} is not a checkpoint: neither a torch.save file (a zip archive or a pickle) nor "
                              f"a safetensors file ({found})")
    if head.startswith(b"PK\x03\x04"):
        why = _damage(path)
        if why:
            raise CheckpointError(f"{path} is damaged: {why} (nothing was loaded)")
    # training checkpoints (timm, DeiT, many authors' scripts) carry their argparse arguments next to the weights
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            with open(path, "rb") as f:  # (a file object: torch.load reads a path named .safetensors as one)
                return torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the reason weights_only gives
            raise CheckpointError(f"cannot read {path} with torch.load(weights_only=True): {e}") from e


def _holds_ema(obj: Any, depth: int = 3) -> bool:
    """Whether a checkpoint mapping holds EMA weights under one of the EMA keys, at most ``depth`` levels down."""
    if not isinstance(obj, Mapping) or depth < 0:
        return False
    return any(isinstance(obj.get(k), Mapping) for k in _EMA_KEYS) or any(
        _holds_ema(obj.get(k), depth - 1) for k in _WRAPPER_KEYS)


def check_keys(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """``state_dict`` as a dict, refused (:class:`CheckpointError`) when a key is not a parameter name (a str)."""
    bad = [k for k in state_dict if not isinstance(k, str)]
    if bad:
        raise CheckpointError(f"a state dict maps parameter names (str) to tensors; this one has {len(bad)} key(s) of "
                              f"another type, e.g. {bad[:3]!r} ({type(bad[0]).__name__})")
    return dict(state_dict)


def unwrap_state_dict(obj: Any, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` state dict inside ``obj``.

    ``obj`` may be a state dict, or a training checkpoint holding one under ``state_dict``, ``model``,
    ``module``, ``net`` or ``params`` (``use_ema=True``: under ``model_ema``/``state_dict_ema``/``ema``, which
    are also the fallback when nothing else is there).  A ``module.`` (DataParallel/DDP) or ``_orig_mod.``
    (``torch.compile``) prefix shared by every key is removed, and the ``n_averaged`` counter of
    ``torch.optim.swa_utils.AveragedModel`` (EMA/SWA weights) dropped.
    """
    seen = 0
    if use_ema and isinstance(obj, Mapping) and not _holds_ema(obj):
        raise CheckpointError(f"use_ema=True but the checkpoint has no EMA weights (keys: {sorted(map(str, obj))[:10]})")
    while True:
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"a checkpoint must be a mapping of names to tensors, got {type(obj).__name__}")
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        order = (_EMA_KEYS + _WRAPPER_KEYS) if use_ema else (_WRAPPER_KEYS + _EMA_KEYS)
        if use_ema:  # the wrapper that leads to the EMA weights (they may sit one level down)
            inner = next((k for k in order if isinstance(obj.get(k), Mapping)
                          and (k in _EMA_KEYS or _holds_ema(obj[k]))), None)
        else:
            inner = next((k for k in order if isinstance(obj.get(k), Mapping)), None)
            if inner in _EMA_KEYS:
                warnings.warn(f"the checkpoint holds only EMA weights (under {inner!r}): loading those", stacklevel=3)
        if inner is None or seen > 3:
            keys = sorted(map(str, obj))[:10]
            raise CheckpointError(f"no state dict found in the checkpoint: it is not a mapping of names to tensors "
                                  f"and holds none under {', '.join(order)} (its keys: {keys})")
        obj, seen = obj[inner], seen + 1
    sd = check_keys(obj)
    if "n_averaged" in sd and len(sd) > 1 and all(k.startswith("module.") for k in sd if k != "n_averaged"):
        del sd["n_averaged"]  # torch.optim.swa_utils.AveragedModel's counter (EMA/SWA weights under module.)
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                stripped = True
    return sd


def read_checkpoint(source: str | os.PathLike | Mapping, *, sha256: str | None = None, use_ema: bool = False,
                    progress: bool = True, model_dir: str | None = None,
                    file_name: str | None = None) -> dict[str, torch.Tensor]:
    """The flat state dict of ``source``: a path, an http(s) or ``file://`` URL, or an already loaded mapping.

    ``sha256`` (hex digest or prefix) is checked before the file is read; on a mismatch a
    :class:`ChecksumError` is raised.  ``model_dir``/``file_name`` place the cached download of an http(s) URL as in
    ``torch.hub.load_state_dict_from_url``.
    """
    if isinstance(source, str) and "://" in source and not is_url(source):
        raise CheckpointError(f"{source}: unsupported URL scheme {urlparse(source).scheme!r} (checkpoints are read "
                              "from a path, an http(s):// URL or a file:// URL)")
    if isinstance(source, Mapping):
        if sha256 is not None:
            raise CheckpointError("sha256= checks a file: pass a path or URL, not a loaded state dict")
        return unwrap_state_dict(source, use_ema)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path, a URL or a state dict, got {type(source).__name__}")
    if is_url(str(source)) and urlparse(str(source)).scheme != "file":
        url = str(source)
        path = _cached_url(url, sha256, progress, model_dir, file_name)
        if _is_safetensors(path):
            obj = _load_safetensors(path)
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):
                try:
                    obj = torch.hub.load_state_dict_from_url(url, model_dir=os.path.dirname(path), map_location="cpu",
                                                             progress=progress, file_name=os.path.basename(path),
                                                             weights_only=True)
                except Exception as e:  # noqa: BLE001
                    raise CheckpointError(f"cannot read {url} (cached at {path}; delete that file to download it "
                                          f"again) with torch.load(weights_only=True): {e}") from e
        return unwrap_state_dict(obj, use_ema)
    if is_url(str(source)):  # file://: the file itself, as its path
        source = _file_url_path(str(source))
    path = str(Path(source).expanduser())
    if os.path.isdir(path):
        raise CheckpointError(f"{path!r} is a directory, not a checkpoint file (a torch.distributed.checkpoint folder "
                              "is read with torch.distributed.checkpoint; pass a file written by torch.save or "
                              "safetensors)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    _check_sha256(path, sha256, path)
    obj = _load_safetensors(path) if _is_safetensors(path) else _torch_load(path)
    return unwrap_state_dict(obj, use_ema)
