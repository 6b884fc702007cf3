"""The backbone API (issue 13), parametrized over every registered model: a newly registered model is covered
without writing a new test.  The checks live in ``visionblocks.testing`` (``BACKBONE_CHECKS``)."""
import pytest

import visionblocks as vb
from visionblocks import testing as T

MODELS = vb.list_models()
CHECKS = list(T.BACKBONE_CHECKS)

# Known failures, each with its cause; strict: the test fails as soon as the model passes, so the entry goes.
KNOWN: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", MODELS)
def test_backbone_contract(name, check, request):
    if (name, check) in KNOWN:
        request.applymarker(pytest.mark.xfail(reason=KNOWN[name, check], strict=True, raises=AssertionError))
    T.BACKBONE_CHECKS[check](name)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_features_only_compile_export(name):
    T.check_model_features_compile_export(name)


def test_every_backbone_check_is_a_model_check():
    assert set(T.BACKBONE_CHECKS) | {"features_compile_export"} <= set(T.MODEL_CHECKS)


# --------------------------------------------------------------------------- the checks catch broken backbones
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from visionblocks.features import FeatureInfo  # noqa: E402
from visionblocks.layers import DropPath  # noqa: E402
from visionblocks.models import ModelBase  # noqa: E402
from visionblocks.models._base import ClassifierHead  # noqa: E402


class ToyBackbone(ModelBase):
    """A correct toy backbone: stride-2 stem (/2), a conv stage (/4), a residual stage with stochastic depth (/8)."""

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.0, drop_path_rate=0.0):
        super().__init__()
        self.in_chans = in_chans
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 8, 3, 2, 1), nn.ReLU())
        self.stages = nn.Sequential(
            nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU()),
            nn.Sequential(_Residual(16, drop_path_rate), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU()))
        self.feature_info = FeatureInfo([dict(num_chs=8, reduction=2, module="stem"),
                                         dict(num_chs=16, reduction=4, module="stages.0"),
                                         dict(num_chs=32, reduction=8, module="stages.1")])
        self.feature_plan = [["stem"], ["stages.0"], ["stages.1"]]
        self.num_features = 32
        self.head = ClassifierHead(32, num_classes, drop_rate)


class _Residual(nn.Module):
    def __init__(self, ch, drop_path_rate):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 1, 1)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x):
        return x + self.drop_path(self.conv(x))


class WrongChannels(ToyBackbone):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.feature_info = FeatureInfo([dict(e, num_chs=17 if e["index"] == 1 else e["num_chs"])
                                         for e in self.feature_info])


class WrongReduction(ToyBackbone):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.feature_info = FeatureInfo([dict(e, reduction=8 if e["index"] == 1 else e["reduction"])
                                         for e in self.feature_info])


class WrongModule(ToyBackbone):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.feature_info = FeatureInfo([dict(e, module="stages.9" if e["index"] == 2 else e["module"])
                                         for e in self.feature_info])


class HeadConvInFinal(ToyBackbone):
    """A conv head in forward_final, applied by forward_intermediates(norm=True) to the last map."""

    def __init__(self, num_classes=1000, **kw):
        super().__init__(num_classes=num_classes, **kw)
        self.conv_head = nn.Conv2d(32, 48, 1)
        self.num_features = 48
        self.head = ClassifierHead(48, num_classes)

    def forward_final(self, x):
        return self.conv_head(x)


class PruningKeepsEverything(ToyBackbone):
    def prune_intermediate_layers(self, indices=1, prune_norm=False, prune_head=True):
        return list(indices)


class CheckpointingDoesNothing(ToyBackbone):
    def set_grad_checkpointing(self, enable=True):
        pass


class WrongNumFeatures(ToyBackbone):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.num_features = 31


class DropPathAddsParameters(ToyBackbone):
    def __init__(self, drop_path_rate=0.0, **kw):
        super().__init__(drop_path_rate=drop_path_rate, **kw)
        if drop_path_rate > 0:
            self.gamma = nn.Parameter(torch.ones(32))


class RefusesDropPath(ToyBackbone):
    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.0):
        super().__init__(num_classes, in_chans, drop_rate)


class DecaysPosEmbed(ToyBackbone):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.pos_embed = nn.Parameter(torch.zeros(1, 8, 1, 1))

    def no_weight_decay(self):
        return set()


class DilatedToy(ToyBackbone):
    """Offers output_stride 4 (the last stage dilated); ``broken`` forgets to say so in feature_info."""

    def __init__(self, output_stride=8, broken=False, **kw):
        super().__init__(**kw)
        if output_stride == 4:
            self.stages[1][1].stride, self.stages[1][1].dilation, self.stages[1][1].padding = (1, 1), (2, 2), (2, 2)
            if not broken:
                self.feature_info = FeatureInfo([dict(e, reduction=min(e["reduction"], 4)) for e in self.feature_info])


class ForgetsDilationInFeatureInfo(DilatedToy):
    def __init__(self, **kw):
        super().__init__(broken=True, **kw)


def _toy(cls, **kw):
    kw = {"paper": "toy", "url": "https://example.org", "input_size": (3, 32, 32), "test_input_size": (32, 32), **kw}
    return vb.ModelInfo(f"toy_{cls.__name__.lower()}", cls, **kw)


BROKEN = [
    (WrongChannels, "feature_info", {}), (WrongReduction, "feature_info", {}), (WrongModule, "feature_info", {}),
    (HeadConvInFinal, "feature_info", {}), (PruningKeepsEverything, "features_only", {}),
    (CheckpointingDoesNothing, "grad_checkpointing", {}), (WrongNumFeatures, "classifier", {}),
    (DropPathAddsParameters, "drop_path_in_chans", {}), (RefusesDropPath, "drop_path_in_chans", {}),
    (DecaysPosEmbed, "pretrained_cfg", {}),
    (ForgetsDilationInFeatureInfo, "output_stride", {"output_strides": (4, 8)}),
    (ToyBackbone, "output_stride", {"output_strides": (4, 8)}),  # declares a stride it cannot honour
]


@pytest.mark.parametrize("cls,check,kw", BROKEN, ids=[f"{c.__name__}-{k}-{i}" for i, (c, k, kw) in enumerate(BROKEN)])
def test_backbone_checks_catch(cls, check, kw):
    with pytest.raises(AssertionError):
        T.BACKBONE_CHECKS[check](_toy(cls, **kw))
    assert "toy_" not in " ".join(vb.list_models()), "a check left the toy in the registry"


def test_correct_toy_backbones_pass_every_fast_check():
    for info in (_toy(ToyBackbone), _toy(DilatedToy, output_strides=(4, 8)), _toy(HeadConvInFinal.__mro__[1])):
        for check in T.BACKBONE_CHECKS.values():
            check(info)
    assert "toy_" not in " ".join(vb.list_models())


@pytest.mark.slow
def test_correct_toy_backbone_compiles_and_exports():
    T.check_model_features_compile_export(_toy(ToyBackbone))


class _SizeBranchNet(nn.Module):
    """conv -> (pooled only when wider than 140) -> global mean -> linear: a Python branch on the size."""

    def __init__(self, num_classes=1000, in_chans=3, branch=True, **kw):
        super().__init__()
        self.conv, self.fc, self.branch = nn.Conv2d(in_chans, 8, 3, padding=1), nn.Linear(8, num_classes), branch

    def forward(self, x):
        y = self.conv(x)
        if self.branch and x.shape[-1] > 140:
            y = F.max_pool2d(y, 3, 1, 1)
        return self.fc(y.mean((2, 3)))


@pytest.mark.slow
@pytest.mark.parametrize("branch,reason,caught", [
    (False, None, False),
    (False, "claims that its sizes cannot stay dynamic", True),   # a false claim
    (True, None, True),                                            # exported at 128, refuses 161x167
    (True, "a branch on the width specialises the export", False),
])
def test_check_model_export_dynamic_catches(branch, reason, caught):
    info = vb.ModelInfo("toy_size_branch", lambda **kw: _SizeBranchNet(branch=branch, **kw), paper="toy",
                        url="https://example.org", input_size=(3, 32, 32), test_input_size=(32, 32),
                        dynamic_export_unsupported=reason)
    if caught:
        with pytest.raises(AssertionError, match="remove dynamic_export_unsupported" if reason else "refuses input"):
            T.check_model_export_dynamic(info)
    else:
        T.check_model_export_dynamic(info)
