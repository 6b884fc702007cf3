"""The block contract, parametrized over every registered block: a newly registered block is covered
without writing a new test.  The checks themselves live in ``visionblocks.testing``."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks import testing as T
from visionblocks.registry import unregister_block

BLOCKS = vb.list_blocks()
FAST = ["forward", "other_sizes", "backward", "dtypes", "channels_last", "compile", "compile_dynamic",
        "compile_train", "export", "bad_input", "state_dict"]


@pytest.mark.parametrize("check", FAST)
@pytest.mark.parametrize("name", BLOCKS)
def test_block_contract(name, check):
    T.BLOCK_CHECKS[check](name)


@pytest.mark.slow
@pytest.mark.parametrize("name", BLOCKS)
def test_block_onnx(name):
    T.check_onnx(name)


# dynamic-shape export: ~90 s of CPU over the registry (involution, halo, mobilevit: 5-10 s each), so the slow
# tier; a cheap sample covering every kind of entry (nchw, nlc, special, fixed_size, a documented refusal) runs
# in the default tier
DYNAMIC_FAST = ["cbam", "se", "self_attention", "graph_conv", "mixer_block", "coatnet_attention"]
@pytest.mark.parametrize("name", DYNAMIC_FAST)
def test_block_export_dynamic_sample(name):
    T.check_export_dynamic(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in BLOCKS if n not in DYNAMIC_FAST])
def test_block_export_dynamic(name):
    T.check_export_dynamic(name)


def test_every_block_check_is_run():
    assert set(T.BLOCK_CHECKS) == set(FAST) | {"onnx", "export_dynamic"}


@pytest.mark.parametrize("name", BLOCKS)
def test_block_registry_entry(name):
    info = vb.block_info(name)
    assert info.family in vb.FAMILIES and info.layout in vb.LAYOUTS
    assert info.paper and info.url.startswith("http"), f"{name}: paper and url are required"
    T.check_onnx_reason(name)
    mod = __import__(info.cls.__module__, fromlist=["_"])
    assert mod.__doc__ and ("arxiv" in mod.__doc__.lower() or "http" in mod.__doc__), \
        f"{name}: its module docstring must name the paper and its link"
    assert info.cls.__doc__, f"{name}: the class needs a docstring"


# ------------------------------------------------------------------------------ check_export_dynamic catches
class _Gate(nn.Module):
    """x * sigmoid(dwconv(x)): exports with dynamic batch, H and W."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))


class _BranchOnSize(_Gate):
    """Pools only maps larger than 12 (a Python branch on H): the export specialises to the example's side."""

    def forward(self, x):
        y = self.conv(x)
        if x.shape[-1] > 12:
            y = F.avg_pool2d(y, 3, 1, 1)
        return x * torch.sigmoid(y)


class _SizeInWeights(_Gate):
    """Crops a 12x12 table to the input (H, W <= 12 would export; the contract's 17x23 does not)."""

    def __init__(self, channels):
        super().__init__(channels)
        self.table = nn.Parameter(torch.randn(1, channels, 12, 12))

    def forward(self, x):
        H, W = x.shape[-2:]
        if H > 12 or W > 12:
            return x * torch.sigmoid(self.conv(x) + F.interpolate(self.table, size=(H, W)))
        return x * torch.sigmoid(self.conv(x) + self.table[..., :H, :W])


def _toy(cls, **kw):
    name = f"toy_dyn_{cls.__name__.lower()}_{len(kw)}"
    unregister_block(name)
    vb.register_block(name, family="attention", layout="nchw", paper="toy", url="https://example.org",
                      example=vb.Example(args=(4,), input_shape=(2, 4, 8, 8)), **kw)(cls)
    return name


@pytest.mark.parametrize("cls,reason,caught", [
    (_Gate, None, False),
    (_Gate, "claims that its sizes cannot stay dynamic", True),        # a false claim
    (_BranchOnSize, None, True),
    (_BranchOnSize, "a branch on the size specialises the export", False),
    (_SizeInWeights, None, True),
])
def test_check_export_dynamic_catches(cls, reason, caught):
    name = _toy(cls, **({"dynamic_export_unsupported": reason} if reason else {}))
    try:
        if caught:
            with pytest.raises(AssertionError, match="remove dynamic_export_unsupported" if reason else name):
                T.check_export_dynamic(name)
        else:
            T.check_export_dynamic(name)
    finally:
        unregister_block(name)


# ------------------------------------------------------------------------------ check_onnx at other sizes
class _PadToEven(_Gate):
    """Pads the map to even sides, gates it, and crops it back, counting the padding with ``ceil`` written as
    ``-(-H // 2)`` (``floor`` of a negative number), or with ``layers.window_count``."""

    ceil = staticmethod(lambda size: -(-size // 2))

    def forward(self, x):
        H, W = x.shape[-2:]
        y = F.pad(x, (0, 2 * self.ceil(W) - W, 0, 2 * self.ceil(H) - H))
        return vb.layers.crop_to(y * torch.sigmoid(self.conv(y)), H, W)


class _PadToEvenWindowCount(_PadToEven):
    ceil = staticmethod(lambda size: vb.layers.window_count(size, 2))


@pytest.mark.slow
@pytest.mark.parametrize("cls,caught", [(_PadToEven, True), (_PadToEvenWindowCount, False), (_Gate, False)])
def test_check_onnx_runs_the_dynamic_graph_at_other_sizes(cls, caught):
    """ONNX's integer division truncates: the exported ``-(-H // 2)`` computes ``floor(H / 2)``, so at an odd
    size the ONNX graph pads too little while the torch.export program (floor division) is right.  check_onnx
    runs the graph at the other sizes and catches it; window_count's form is right in both."""
    name = _toy(cls)
    try:
        T.check_export_dynamic(name)  # the program is right in every case
        if caught:
            with pytest.raises(AssertionError, match=r"at \(\(3, 4, 17, 23\),\) ONNX output 0"):
                T.check_onnx(name)
        else:
            T.check_onnx(name)
    finally:
        unregister_block(name)
