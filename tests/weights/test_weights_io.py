"""Reading checkpoints: files, file:// URLs (read in place), http URLs through torch.hub's cache (a local server),
sha256, wrappers, prefixes, safetensors."""
from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import threading

import pytest
import torch
import torch.nn as nn

from _reference import run_at_once
from visionblocks.weights import (
    CheckpointError, ChecksumError, load_checkpoint, read_checkpoint, sha256_of, unwrap_state_dict,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def _sd(seed=1):
    torch.manual_seed(seed)
    return Tiny().state_dict()


def _same(model, sd):
    return all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


@pytest.fixture
def http_root(tmp_path):
    """(directory, base URL): an HTTP server on localhost serving the directory, for the download path."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
    lambda sd: {"model_ema": sd},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
    lambda sd: {"state_dict": {f"module._orig_mod.{k}": v for k, v in sd.items()}},
], ids=["plain", "state_dict", "model", "model_ema", "ddp", "ddp+compile"])
def test_wrappers_and_prefixes(tmp_path, wrap):
    sd = _sd()
    path = tmp_path / "ck.pth"
    torch.save(wrap(sd), path)
    m = Tiny()
    res = load_checkpoint(m, path)
    assert res.layout == "visionblocks" and not res.missing_keys and not res.unexpected_keys
    assert _same(m, sd)


def test_use_ema_picks_the_ema_weights():
    plain, ema = _sd(1), _sd(2)
    got = unwrap_state_dict({"state_dict": plain, "state_dict_ema": ema}, use_ema=True)
    assert all(torch.equal(got[k], ema[k]) for k in ema)
    got = unwrap_state_dict({"state_dict": plain, "state_dict_ema": ema})
    assert all(torch.equal(got[k], plain[k]) for k in plain)
    with pytest.raises(CheckpointError, match="no EMA"):
        unwrap_state_dict({"state_dict": plain}, use_ema=True)


def test_no_state_dict_inside_is_a_clear_error(tmp_path):
    torch.save({"epoch": 3, "acc": 71.2}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="no state dict found"):
        read_checkpoint(tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "absent.pth")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _sd(), "payload": _Evil()}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_checkpoint(path)


def test_argparse_namespace_of_training_checkpoints_is_accepted(tmp_path):
    import argparse
    torch.save({"state_dict": _sd(), "args": argparse.Namespace(lr=0.1, model="tiny")}, tmp_path / "ck.pth")
    assert set(read_checkpoint(tmp_path / "ck.pth")) == set(_sd())


def test_http_url_goes_through_the_hub_cache(http_root, hub_dir):
    root, base = http_root
    sd = _sd()
    torch.save(sd, root / "tiny-abc.pth")
    m = Tiny()
    load_checkpoint(m, f"{base}/tiny-abc.pth", progress=False)
    assert _same(m, sd)
    (cached,) = (hub_dir / "checkpoints").iterdir()  # named after the whole URL: a digest, then the file name
    assert cached.is_file() and cached.name.endswith("-tiny-abc.pth")
    (root / "tiny-abc.pth").unlink()  # a second load reads the cached copy
    m2 = Tiny()
    load_checkpoint(m2, f"{base}/tiny-abc.pth", progress=False)
    assert _same(m2, sd)
    with pytest.raises(CheckpointError, match="cannot download .*absent.pth"):  # one clear error, nothing cached
        read_checkpoint(f"{base}/absent.pth", progress=False)
    assert list((hub_dir / "checkpoints").iterdir()) == [cached]


def test_file_url_is_read_in_place(tmp_path, hub_dir):
    # two files of one name at two places, and a file overwritten: each load reads the file the URL names now
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sd_a, sd_b = _sd(1), _sd(2)
    torch.save(sd_a, tmp_path / "a" / "best.pth")
    torch.save(sd_b, tmp_path / "b" / "best.pth")
    m = Tiny()
    load_checkpoint(m, (tmp_path / "a" / "best.pth").as_uri())
    assert _same(m, sd_a)
    load_checkpoint(m, (tmp_path / "b" / "best.pth").as_uri())
    assert _same(m, sd_b)
    sd_c = _sd(3)
    torch.save(sd_c, tmp_path / "a" / "best.pth")
    load_checkpoint(m, (tmp_path / "a" / "best.pth").as_uri())
    assert _same(m, sd_c)
    assert not (hub_dir / "checkpoints").exists()  # nothing copied into the cache
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):  # as its path would
        read_checkpoint((tmp_path / "absent.pth").as_uri())
    with pytest.raises(CheckpointError, match="on this machine"):
        read_checkpoint("file://otherhost/w.pth")


def test_sha256_checked_before_loading(tmp_path, hub_dir, http_root):
    root, base = http_root
    sd = _sd()
    path = root / "tiny.pth"
    torch.save(sd, path)
    url = f"{base}/tiny.pth"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha256_of(path) == digest
    m = Tiny()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    bad = "0" * 64 if not digest.startswith("0") else "f" * 64
    with pytest.raises(ChecksumError, match="sha256"):
        load_checkpoint(m, path, sha256=bad)
    with pytest.raises(ChecksumError, match="sha256"):
        load_checkpoint(m, path.as_uri(), sha256=bad)
    with pytest.raises(ChecksumError, match="sha256"):  # a fresh download is refused too
        load_checkpoint(m, url, sha256=bad, progress=False)
    assert list((hub_dir / "checkpoints").iterdir()) == []  # the bad download is not kept
    assert _same(m, before)  # nothing was loaded
    load_checkpoint(m, path, sha256=digest)
    load_checkpoint(m, url, sha256=digest[:8].upper(), progress=False)  # a prefix, as torchvision's names
    assert _same(m, sd)
    with pytest.raises(ChecksumError):  # the cached copy is checked as well
        load_checkpoint(m, url, sha256=bad, progress=False)


def test_safetensors_round_trip(tmp_path, hub_dir):
    st = pytest.importorskip("safetensors.torch")
    sd = {k: v.contiguous() for k, v in _sd().items()}
    for name in ("w.safetensors", "w.bin"):  # recognised by its extension or by its header
        st.save_file(sd, str(tmp_path / name))
        m = Tiny()
        load_checkpoint(m, tmp_path / name)
        assert _same(m, sd)
    m = Tiny()
    load_checkpoint(m, (tmp_path / "w.safetensors").as_uri(), progress=False)
    assert _same(m, sd)
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])  # a damaged file: our error, its path
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_checkpoint(Tiny(), tmp_path / "cut.safetensors")


def test_safetensors_without_the_package_names_the_extra(tmp_path, monkeypatch):
    import builtins
    import json
    import struct
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name.startswith("safetensors"):
            raise ImportError("no safetensors")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(CheckpointError, match="safetensors"):
        read_checkpoint(tmp_path / "w.safetensors")


def test_the_model_comes_first(tmp_path):
    torch.save(_sd(), tmp_path / "ck.pth")
    with pytest.raises(TypeError, match=r"load_checkpoint expects the model to fill as its first argument .* got str"):
        load_checkpoint(str(tmp_path / "ck.pth"), Tiny())


def test_files_that_are_not_checkpoints_and_other_schemes_are_named(tmp_path):
    (tmp_path / "notes.pth").write_text("hello world")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"notes.pth is not a checkpoint: .*starts with b'hell'"):
        read_checkpoint(tmp_path / "notes.pth")
    with pytest.raises(CheckpointError, match=r"empty.pth is not a checkpoint: .*it is empty"):
        read_checkpoint(tmp_path / "empty.pth")
    torch.save(_sd(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)  # a pickle, not a zip: read
    assert set(read_checkpoint(tmp_path / "legacy.pth")) == set(_sd())
    with pytest.raises(CheckpointError, match="unsupported URL scheme 'ftp'"):
        read_checkpoint("ftp://example.org/w.pth")


def test_safetensors_whose_header_length_starts_with_the_pickle_byte(tmp_path):
    # a safetensors file starts with its header's length (u64, little-endian); when its first byte was 0x80 (one file
    # in 32: the header is padded to 8 bytes) the file was taken for a pickle and refused
    st = pytest.importorskip("safetensors.torch")
    sd = {k: v.contiguous() for k, v in _sd().items()}
    path = tmp_path / "w.safetensors"
    for pad in range(300):
        st.save_file(sd, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    m = Tiny()
    load_checkpoint(m, path)
    assert _same(m, sd)
    m = Tiny()
    load_checkpoint(m, path.rename(tmp_path / "w.bin"))  # by its content alone
    assert _same(m, sd)


def test_a_download_cut_short_is_refused_and_not_cached(tmp_path, hub_dir):
    # torch's download does not compare the length it got with Content-Length: a connection cut short was cached as
    # the checkpoint, and every later load failed on that file (it was never downloaded again)
    data = {}

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = data[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if "cut" in self.path else body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        sd = _sd()
        torch.save(sd, tmp_path / "w.pth")
        data["/cut/w.pth"] = data["/ok/w.pth"] = (tmp_path / "w.pth").read_bytes()
        with pytest.raises(CheckpointError, match=r"download of .*/cut/w.pth is incomplete or damaged.*nothing was "
                                                  r"cached"):
            read_checkpoint(f"{base}/cut/w.pth", progress=False)
        assert list((hub_dir / "checkpoints").iterdir()) == []  # no copy, no part file
        m = Tiny()
        load_checkpoint(m, f"{base}/ok/w.pth", progress=False)  # the whole file: loaded and cached
        assert _same(m, sd) and [p.name[-6:] for p in (hub_dir / "checkpoints").iterdir()] == ["-w.pth"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("keys", [[0, 1], ["conv.weight", 5], [("a", "b")]])
def test_keys_that_are_not_names_are_a_checkpoint_error(tmp_path, keys):
    # non-str keys crashed in the prefix handling with AttributeError/TypeError
    sd = {k: torch.zeros(1) for k in keys}
    with pytest.raises(CheckpointError, match=r"maps parameter names \(str\) to tensors; this one has"):
        read_checkpoint(sd)
    m = Tiny()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(CheckpointError, match="key"):
        load_checkpoint(m, sd)
    assert _same(m, before)


def test_two_urls_ending_in_the_same_name_are_two_cached_files(http_root, hub_dir):
    # (every Hugging Face URL ends in .../resolve/main/model.safetensors): the second load read the first's cached
    # weights, silently
    root, base = http_root
    for i in (1, 2):
        (root / f"ft{i}").mkdir()
        torch.save(_sd(seed=i), root / f"ft{i}" / "model.pth")
    for i in (1, 2):
        m = Tiny()
        load_checkpoint(m, f"{base}/ft{i}/model.pth", progress=False)
        assert _same(m, _sd(seed=i))
    assert len(list((hub_dir / "checkpoints").iterdir())) == 2


def test_threads_downloading_one_url_each_get_the_whole_file(http_root, hub_dir):
    # the temporary file was named by the process only: two threads wrote one file and one rename failed
    root, base = http_root
    sd = _sd()
    torch.save(sd, root / "w.pth")
    results, errors = run_at_once(lambda: read_checkpoint(f"{base}/w.pth", progress=False))
    assert errors == [] and len(results) == 4
    assert all(torch.equal(r[k], sd[k]) for r in results for k in sd)
    assert [p.name[-6:] for p in (hub_dir / "checkpoints").iterdir()] == ["-w.pth"]  # no part file left


def test_a_damaged_zip_is_refused_whatever_the_source(tmp_path, hub_dir, http_root):
    # torch.load checks no CRC: bytes damaged inside a tensor's data loaded as wrong values
    root, base = http_root
    sd = {"weight": torch.arange(4 * 3 * 9, dtype=torch.float32).reshape(4, 3, 3, 3)}
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    raw = bytearray(path.read_bytes())
    at = raw.find(bytes(sd["weight"].view(torch.uint8).flatten().tolist()))  # the tensor's data, stored as is
    assert at > 0
    raw[at + 8:at + 16] = bytes(8)
    path.write_bytes(bytes(raw))
    m = nn.Conv2d(3, 4, 3, bias=False)
    before = m.weight.detach().clone()
    for source in (path, path.as_uri()):
        with pytest.raises(CheckpointError, match="fails its CRC"):
            load_checkpoint(m, source)
    assert torch.equal(m.weight, before)
    (root / "w.pth").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="incomplete or damaged"):  # a download: refused, not cached
        read_checkpoint(f"{base}/w.pth", progress=False)
    assert list((hub_dir / "checkpoints").iterdir()) == []
    # a cached copy damaged after its download
    torch.save(sd, root / "w.pth")
    read_checkpoint(f"{base}/w.pth", progress=False)
    (cached,) = (hub_dir / "checkpoints").iterdir()
    cached.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"cached copy .* is damaged: .*fails its CRC; delete"):
        load_checkpoint(m, f"{base}/w.pth", progress=False)
    assert torch.equal(m.weight, before)


def test_a_sparse_tensor_is_named_and_nothing_is_loaded():
    # it passed the kind check, and the copy failed (RuntimeError) after 101 of 122 tensors were written
    m = Tiny()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    sd = _sd()
    sd["fc.weight"] = sd["fc.weight"].to_sparse()
    with pytest.raises(CheckpointError, match="fc.weight: checkpoint sparse_coo tensor"):
        load_checkpoint(m, sd)
    assert _same(m, before)


def test_a_compiled_model_loads_into_its_network():
    m = Tiny()
    compiled = torch.compile(m)
    sd = _sd(seed=3)
    load_checkpoint(compiled, {f"_orig_mod.{k}": v for k, v in sd.items()})
    assert _same(m, sd)
    load_checkpoint(compiled, _sd(seed=4))
    assert _same(m, _sd(seed=4))
