"""visionblocks blocks by name in ultralytics YOLO YAMLs: every width scale, bad lines, a few training steps and an
export of a real YOLOv8 with a CBAM, offline (integration tier)."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# ultralytics reads these when imported: a private settings folder (with a font, so that nothing is downloaded)
_CONFIG = Path(tempfile.mkdtemp(prefix="vb-ultralytics-"))
atexit.register(shutil.rmtree, _CONFIG, True)  # every process that collects this file makes one; each removes it
os.environ["YOLO_CONFIG_DIR"] = str(_CONFIG)
os.environ["YOLO_OFFLINE"] = "1"
os.environ.setdefault("YOLO_VERBOSE", "False")

ultralytics = pytest.importorskip("ultralytics")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _integration_docs import doc_examples, run_example  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.utils import SETTINGS  # noqa: E402

import visionblocks.integrations.ultralytics as vbu  # noqa: E402
from visionblocks.surgery import SurgeryError  # noqa: E402

YAML = doc_examples()["yolov8-cbam.yaml"]


@pytest.fixture(scope="module", autouse=True)
def _offline_settings():
    import matplotlib
    shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", _CONFIG / "Arial.ttf")
    SETTINGS.update({"runs_dir": str(_CONFIG / "runs"), "datasets_dir": str(_CONFIG / "datasets"),
                     "weights_dir": str(_CONFIG / "weights"), "sync": False})
    yield
    shutil.rmtree(_CONFIG, ignore_errors=True)


def _yaml(tmp_path: Path, scale: str, text: str = YAML) -> str:
    path = tmp_path / f"yolov8{scale}-cbam.yaml"
    path.write_text(text)
    return str(path)


def _dataset(root: Path) -> Path:
    """Four 64x64 images per split, each a red box on a plain background, with their YOLO labels."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(4):
            img = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(0, 255, 3)))
            x0, y0 = (int(v) for v in rng.integers(4, 28, 2))
            w, h = (int(v) for v in rng.integers(12, 30, 2))
            ImageDraw.Draw(img).rectangle([x0, y0, x0 + w, y0 + h], fill=(255, 0, 0))
            img.save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text(
                f"0 {(x0 + w / 2) / 64:.4f} {(y0 + h / 2) / 64:.4f} {w / 64:.4f} {h / 64:.4f}\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: box\n")
    return data


def test_every_nchw_block_has_a_yaml_name():
    from ultralytics.nn import tasks
    assert "cbam" in vbu.YOLO_BLOCKS and vars(tasks)["cbam"] is vbu.YOLO_BLOCKS["cbam"]
    assert set(vbu.yolo_block_names()) <= set(vbu.YOLO_BLOCKS)
    assert "smlp_block" not in vbu.YOLO_BLOCKS  # fixed-size blocks cannot follow a YOLO's changing input sizes
    assert vbu.register() == []  # idempotent


@pytest.mark.parametrize("scale,channels", [("n", 256), ("s", 512)])
def test_one_yaml_at_every_width(tmp_path, scale, channels):
    model = DetectionModel(_yaml(tmp_path, scale), nc=1, verbose=False)
    cbam = model.model[9]
    assert type(cbam).__name__ == "CBAM" and (cbam.i, cbam.f) == (9, -1)
    assert sum(p.numel() for p in cbam.parameters()) == sum(
        p.numel() for p in __import__("visionblocks").create_block("cbam", channels).parameters())
    model.eval()
    out = model(torch.zeros(1, 3, 64, 64))
    assert out[0].shape[:2] == (1, 5)


def test_yaml_keywords_and_bad_lines(tmp_path):
    text = YAML.replace("[-1, 1, cbam, []]", "[-1, 1, cbam, [{reduction: 8, kernel_size: 3}]]")
    model = DetectionModel(_yaml(tmp_path, "n", text), nc=1, verbose=False)
    assert sum(p.numel() for p in model.model[9].parameters()) == sum(
        p.numel() for p in __import__("visionblocks").create_block("cbam", 256, reduction=8, kernel_size=3).parameters())
    bad = YAML.replace("[-1, 1, cbam, []]", "[-1, 1, cbam, [16, 7, relu, 99]]")
    with pytest.raises(SurgeryError, match=r"YOLO YAML layer 'cbam' with arguments \[16, 7, 'relu', 99\]: block 'cbam' "
                                           r"takes at most 3 arguments after the channel count"):
        DetectionModel(_yaml(tmp_path, "n", bad), nc=1, verbose=False)
    bad = YAML.replace("[-1, 1, cbam, []]", "[-1, 1, cbam, [{squeeze: 4}]]")
    with pytest.raises(SurgeryError, match=r"'cbam': unknown arguments \['squeeze'\]"):
        DetectionModel(_yaml(tmp_path, "n", bad), nc=1, verbose=False)


@pytest.mark.parametrize("typo,suggested", [("cbma", "cbam"), ("C2F", "C2f")])
def test_yaml_unknown_layer_name_is_named(tmp_path, typo, suggested):
    # ultralytics' parser alone raises a bare KeyError('cbma'); a name of either library gets suggested
    line = "[-1, 1, cbam, []]" if typo == "cbma" else "[-1, 3, C2f, [128, True]]"
    assert line in YAML
    bad = YAML.replace(line, line.replace(suggested, typo), 1)
    with pytest.raises(SurgeryError, match=rf"YOLO YAML layer '{typo}' is neither an ultralytics layer nor a "
                                           rf"visionblocks block; did you mean: .*\b{suggested}\b"):
        DetectionModel(_yaml(tmp_path, "n", bad), nc=1, verbose=False)
    from ultralytics.nn import tasks
    vbu.register()  # again: the parser is wrapped once
    assert tasks.parse_model.__wrapped__.__name__ == "parse_model"
    assert not getattr(tasks.parse_model.__wrapped__, "_visionblocks_named", False)  # wrapped once, not per call


def test_doc_example_trains_and_exports(tmp_path, monkeypatch):
    data = _dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    _yaml(tmp_path, "n")
    ns = run_example("ultralytics", monkeypatch, {'"path/to/data.yaml"': repr(str(data))})
    model, exported = ns["model"], ns["exported"]
    assert type(model.model.model[9]).__name__ == "CBAM"
    x = torch.rand(1, 3, 64, 64)
    net = model.model.float().eval()
    scripted = torch.jit.load(exported)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x)[0] if isinstance(scripted(x), (list, tuple)) else scripted(x),
                                   net(x)[0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("block", ["acnet_block", "repvgg_block", "diverse_branch_block"])
def test_ultralytics_fuse_folds_replaced_re_parameterizable_blocks(tmp_path, block):
    # ultralytics' BaseModel.fuse (called by predict, val, export and the trainer's final evaluation) read
    # Conv.conv.weight of a Conv whose convolution vb.replace had swapped: AttributeError 'RepSlot' has no 'weight'
    import copy

    import visionblocks as vb
    from visionblocks.testing import randomize_bn_stats
    x = torch.rand(1, 3, 64, 64)
    m = DetectionModel("yolov8n.yaml", nc=1, verbose=False)
    vb.replace(m, "model.2.m.0.cv1.conv", block, example_input=x)
    randomize_bn_stats(m, seed=3)
    seen = {}
    m.model[2].register_forward_hook(lambda mod, a, out: seen.__setitem__("out", out))
    with torch.no_grad():
        m.eval()(x)
        ref = seen.pop("out")
        fused = copy.deepcopy(m).train().fuse(verbose=False)  # (ultralytics may fuse a model in training mode)
        assert fused.training and type(fused.model[2].m[0].cv1.conv) is torch.nn.Conv2d
        fused.eval()(x)
    torch.testing.assert_close(seen["out"], ref, rtol=1e-4, atol=1e-4)


def test_importing_visionblocks_after_ultralytics_registers_the_yaml_names(tmp_path):
    # a checkpoint of a YOLO YAML with our blocks, loaded in a fresh process (resume, fine-tune): ultralytics rebuilds
    # the model from its YAML, whose names were known only after `import visionblocks.integrations.ultralytics`
    # (KeyError: 'cbam'); unpickling the checkpoint imports visionblocks, which now registers them
    import subprocess
    import sys
    model = DetectionModel(_yaml(tmp_path, "n"), nc=1, verbose=False)
    torch.save({"model": model}, tmp_path / "ckpt.pt")
    code = ("import torch\nfrom ultralytics.nn.tasks import DetectionModel\n"
            f"ck = torch.load({str(tmp_path / 'ckpt.pt')!r}, weights_only=False)\n"
            "rebuilt = DetectionModel(ck['model'].yaml, nc=1, verbose=False)\n"
            "print(type(rebuilt.model[9]).__name__)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "CBAM"


def test_a_first_call_refusal_names_the_yaml_layer(tmp_path):
    # sge's 7 groups cannot divide the channels the layer before gives: refused at the first forward, which now names
    # the YAML line's index and block
    bad = YAML.replace("[-1, 1, cbam, []]", "[-1, 1, sge, [7]]", 1)
    with pytest.raises(SurgeryError, match=r"YOLO YAML layer 9 'sge': .*groups"):
        DetectionModel(_yaml(tmp_path, "n", bad), nc=1, verbose=False)


def test_an_unbuilt_yaml_block_pickles():
    # its class's qualified name was "YOLO_BLOCKS['cbam']", which pickle cannot look up (PicklingError)
    import pickle
    block = pickle.loads(pickle.dumps(vbu.YOLO_BLOCKS["cbam"](8)))
    assert type(block) is vbu.YOLO_BLOCKS["cbam"] and block.block_kwargs == {} and block.block_args == (8,)
    out = block(torch.randn(1, 16, 8, 8))
    assert out.shape == (1, 16, 8, 8) and type(block).__name__ == "CBAM"
