"""Models built from the blocks, one paper per module.  Importing a module registers its models."""
from . import (
    bam_resnet, coatnet, convmixer, coresnet, cotnet, dy_resnet, efficientnet, epsanet, gfnet, ghostnet, gmlp,
    halonet, mlp_mixer, mobilenetv2, mobilevit, octresnet, parnet, rednet, rep_resnet, repmlpnet, repvgg,
    res2net, resmlp, resnest, resnet, rest, sa_resnet, scnet, sge_resnet, sknet, smlpnet, triplet_resnet, vip,
    volo,
)

__all__ = [
    "bam_resnet", "coatnet", "convmixer", "coresnet", "cotnet", "dy_resnet", "efficientnet", "epsanet", "gfnet",
    "ghostnet", "gmlp", "halonet", "mlp_mixer", "mobilenetv2", "mobilevit", "octresnet", "parnet", "rednet",
    "rep_resnet", "repmlpnet", "repvgg", "res2net", "resmlp", "resnest", "resnet", "rest", "sa_resnet", "scnet",
    "sge_resnet", "sknet", "smlpnet", "triplet_resnet", "vip", "volo",
]
