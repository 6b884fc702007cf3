"""Models built from the blocks, one paper per module.  Importing a module registers its models."""
from ._base import ClassifierHead, ModelBase, resolve_data_config
from . import (
    attention_resnets, coatnet, convmixer, coresnet, cotnet, dy_resnet, efficientnet, epsanet, gfnet, ghostnet,
    gmlp, halonet, mlp_mixer, mobilenetv2, mobilevit, octresnet, parnet, rednet, rep_resnet, repmlpnet, repvgg,
    res2net, resmlp, resnest, resnet, rest, scnet, sknet, smlpnet, vip, volo,
)

__all__ = [
    "ClassifierHead", "ModelBase", "resolve_data_config",
    "attention_resnets", "coatnet", "convmixer", "coresnet", "cotnet", "dy_resnet", "efficientnet", "epsanet",
    "gfnet", "ghostnet", "gmlp", "halonet", "mlp_mixer", "mobilenetv2", "mobilevit", "octresnet", "parnet",
    "rednet", "rep_resnet", "repmlpnet", "repvgg", "res2net", "resmlp", "resnest", "resnet", "rest", "scnet",
    "sknet", "smlpnet", "vip", "volo",
]
