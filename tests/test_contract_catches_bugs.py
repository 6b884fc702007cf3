"""The contract suite would fail for a block that breaks a rule: deliberately broken toy blocks, registered
inside this test, are each caught by the check for the rule they break (and a correct toy passes all)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import visionblocks as vb
from visionblocks import testing as T
from visionblocks.features import FeatureInfo
from visionblocks.layers import check_nchw
from visionblocks.models._base import ClassifierHead, ModelBase
from visionblocks.registry import unregister_block

EX = vb.Example(args=(8,), input_shape=(2, 8, 12, 12))


class Good(nn.Module):
    """A correct toy gate: x * sigmoid(dwconv(x))."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x):
        check_nchw(x, self.channels, "Good")
        return x * torch.sigmoid(self.conv(x))


class WrongShape(Good):
    def forward(self, x):
        check_nchw(x, self.channels, "WrongShape")
        return F.avg_pool2d(x, 2)


class NonFinite(Good):
    def forward(self, x):
        check_nchw(x, self.channels, "NonFinite")
        return x / (self.conv(x) * 0)


class TiedToExampleSize(Good):
    """Weights tied to 12x12 without saying so (the README-size bug)."""

    def __init__(self, channels):
        super().__init__(channels)
        self.pos = nn.Parameter(torch.zeros(1, channels, 12, 12))

    def forward(self, x):
        check_nchw(x, self.channels, "Tied")
        return x + self.pos


class UnusedParameter(Good):
    def __init__(self, channels):
        super().__init__(channels)
        self.unused = nn.Linear(channels, channels)


class NoValidation(Good):
    def forward(self, x):  # a wrong channel count fails deep inside torch
        return x * torch.sigmoid(self.conv(x))


class BatchMixing(Good):
    """Normalises over the batch in eval mode: sample 0 depends on the others."""

    def forward(self, x):
        check_nchw(x, self.channels, "BatchMixing")
        return x - x.mean(0, keepdim=True)


class GraphBreak(Good):
    def forward(self, x):
        check_nchw(x, self.channels, "GraphBreak")
        if x.sum().item() > 1e9:  # data-dependent Python control flow
            return x
        return x * torch.sigmoid(self.conv(x))


class ChannelsLastGraphBreak(Good):
    """A channels-last path dynamo cannot trace (a strided ``out=``): the NCHW example compiles, a fused network's
    channels-last maps would not (triplet attention had this bug)."""

    def forward(self, x):
        check_nchw(x, self.channels, "ChannelsLastGraphBreak")
        g = torch.sigmoid(self.conv(x))
        if x.is_contiguous():
            return x * g
        return torch.mul(x, g, out=torch.empty_like(x))


class StateOutsideParams(Good):
    """Keeps a tensor as a plain attribute: not in the state_dict."""

    def __init__(self, channels):
        super().__init__(channels)
        self.scale = torch.rand(channels)

    def forward(self, x):
        check_nchw(x, self.channels, "State")
        return x * torch.sigmoid(self.conv(x)) * self.scale[:, None, None]


class ChannelsLastBug(Good):
    """Reinterprets memory: right for contiguous input, wrong for channels_last."""

    def forward(self, x):
        check_nchw(x, self.channels, "CL")
        flat = x.reshape(-1) if x.is_contiguous() else x.permute(0, 2, 3, 1).reshape(-1)
        return flat.view(x.shape) * torch.sigmoid(self.conv(x))


class PermutedOutput(Good):
    """Right values, but the output is a permuted view: computed on the (B, H, W, C) view and permuted back, an
    NCHW input gives a channels-last output (danet, emsa, S2 and ViP's blocks did)."""

    def forward(self, x):
        check_nchw(x, self.channels, "Permuted")
        t = torch.sigmoid(self.conv(x)).permute(0, 2, 3, 1).contiguous() * x.permute(0, 2, 3, 1)  # (B, H, W, C)
        return t.permute(0, 3, 1, 2)


class NchwOutputOnChannelsLast(Good):
    """Right values, but a channels-last input gives an NCHW output (the result allocated in (B, C, H, W) order
    regardless of the input: cot, halo, the per-sample and deformable convolutions did)."""

    def forward(self, x):
        check_nchw(x, self.channels, "NchwOut")
        return (x * torch.sigmoid(self.conv(x))).contiguous()


class ChannelsLastOnlyInTraining(Good):
    """Keeps the layout in eval, loses it under autograd (a path taken only when gradients are recorded)."""

    def forward(self, x):
        check_nchw(x, self.channels, "TrainOnly")
        y = x * torch.sigmoid(self.conv(x))
        return y.contiguous() if torch.is_grad_enabled() else y


class CroppedView(Good):
    """Pads an odd-sized map to even size and returns the cropped view: right values, but at odd sizes the output
    is a strided view (the example, 12x12, needs no pad)."""

    def forward(self, x):
        check_nchw(x, self.channels, "Cropped")
        h, w = x.shape[-2:]
        xp = F.pad(x, (0, w % 2, 0, h % 2))
        return (xp * torch.sigmoid(self.conv(xp)))[:, :, :h, :w]


class Float64Bug(Good):
    def forward(self, x):
        check_nchw(x, self.channels, "F64")
        return (x * torch.sigmoid(self.conv(x))).float()


class ExportBug(Good):
    """Loses the bfloat16 dtype and cannot be exported (numpy round trip)."""

    def forward(self, x):
        check_nchw(x, self.channels, "Np")
        return torch.from_numpy(x.detach().float().numpy()) * torch.sigmoid(self.conv(x)).float()


class FalseOnnxClaim(Good):
    pass


CASES = [
    (WrongShape, "forward", {}), (NonFinite, "forward", {}), (TiedToExampleSize, "other_sizes", {}),
    (TiedToExampleSize, "other_sizes", {"fixed_size": True}), (UnusedParameter, "backward", {}),
    (NoValidation, "bad_input", {}), (BatchMixing, "other_sizes", {}), (GraphBreak, "compile", {}),
    (ChannelsLastGraphBreak, "compile", {}),
    (StateOutsideParams, "state_dict", {}), (ChannelsLastBug, "channels_last", {}), (Float64Bug, "dtypes", {}),
    (PermutedOutput, "channels_last", {}), (NchwOutputOnChannelsLast, "channels_last", {}),
    (ChannelsLastOnlyInTraining, "channels_last", {}), (CroppedView, "other_sizes", {}),
    (ExportBug, "export", {}), (FalseOnnxClaim, "onnx", {"onnx_unsupported": "claims ONNX cannot express it at all"}),
]


def _register(cls, **kw):
    name = f"toy_{cls.__name__.lower()}_{len(kw)}"
    unregister_block(name)
    vb.register_block(name, family="attention", layout="nchw", paper="toy", url="https://example.org",
                      example=EX, **kw)(cls)
    return name


@pytest.mark.parametrize("cls,check,kw", CASES, ids=[f"{c.__name__}-{k}" for c, k, _ in CASES])
def test_contract_catches(cls, check, kw):
    name = _register(cls, **kw)
    try:
        with pytest.raises(AssertionError):
            T.BLOCK_CHECKS[check](name)
    finally:
        unregister_block(name)


def test_correct_toy_block_passes_every_check():
    name = _register(Good)
    try:
        T.check_block(name)
    finally:
        unregister_block(name)


# ---------------------------------------------------------------------------------------------- models
class ToyNet(ModelBase):
    """A correct toy classifier: two conv stages (features at strides 2 and 4), global pooling, linear head;
    the backbone API comes from its feature plan, the input check from ModelBase."""

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.0, drop_path_rate=0.0):
        super().__init__()
        self.in_chans = in_chans
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 8, 3, 2, 1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.num_features = 8
        self.head = ClassifierHead(8, num_classes, drop_rate)  # no residual branch: drop_path_rate has nothing to drop
        self.feature_info = FeatureInfo([dict(num_chs=8, reduction=2, module="stem"),
                                         dict(num_chs=8, reduction=4, module="stage")])
        self.feature_plan = [["stem"], ["stage"]]


class ToyNetNoValidation(ToyNet):
    def check_input(self, x):  # 4 channels fail deep inside torch
        pass


class ToyNetIgnoresInChans(ToyNet):
    def __init__(self, num_classes=1000, in_chans=3):
        super().__init__(num_classes, 3)


class ToyNetUnusedParameter(ToyNet):
    def __init__(self, num_classes=1000, in_chans=3):
        super().__init__(num_classes, in_chans)
        self.unused = nn.Linear(8, 8)


class ToyNetForwardIsNotTheComposition(ToyNet):
    def forward(self, x):
        return 2 * super().forward(x)


def _toy_model(cls, **kw):
    kw = {"paper": "toy", "url": "https://example.org", "input_size": (3, 32, 32), "paper_params": 0.009808, **kw}
    return vb.ModelInfo(f"toy_{cls.__name__.lower()}", cls, **kw)


MODEL_CASES = [
    (ToyNetNoValidation, "inputs", {}), (ToyNetIgnoresInChans, "forward_backward", {}),
    (ToyNetUnusedParameter, "forward_backward", {}), (ToyNetForwardIsNotTheComposition, "forward_backward", {}),
    (ToyNet, "paper_counts", {"paper_params": 1.0}), (ToyNet, "paper_counts", {"paper_macs": 1.0}),
]


@pytest.mark.parametrize("cls,check,kw", MODEL_CASES, ids=[f"{c.__name__}-{k}-{len(kw)}" for c, k, kw in MODEL_CASES])
def test_model_contract_catches(cls, check, kw):
    with pytest.raises(AssertionError):
        T.MODEL_CHECKS[check](_toy_model(cls, **kw))


def test_correct_toy_model_passes_every_check():
    T.check_model(_toy_model(ToyNet))
