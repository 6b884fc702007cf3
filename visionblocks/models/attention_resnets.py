"""ResNet-50 with an attention module, as the attention papers evaluate it: SENet (Hu et al., CVPR 2018, arXiv
1709.01507), CBAM (Woo et al., ECCV 2018, arXiv 1807.06521), ECA-Net (Wang et al., CVPR 2020, arXiv 1910.03151),
BAM (Park et al., BMVC 2018, arXiv 1807.06514), SA-Net (Zhang & Yang, ICASSP 2021, arXiv 2102.00240), triplet
attention (Misra et al., WACV 2021, arXiv 2010.03045) and SGE (Li et al., arXiv 1905.09646).

Each is one call of :func:`register_attn_resnet`: the attention goes in every bottleneck on the residual branch,
after its last BatchNorm and before the addition (``attn``, the SENet position, which all but BAM use), or
between the stages (``stage_attn``, BAM: after stages 1-3, just before every downsampling).  The backbone is the
paper's baseline: He et al.'s ResNet-50 with the stride on the first 1x1 convolution (3.86 G multiply-adds:
SENet, CBAM, ECA-Net, BAM), or torchvision's with the stride on the 3x3 (4.12 G: SA-Net, triplet attention, SGE,
whose authors built on it).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from visionblocks.blocks.attention import EfficientChannelAttention
from visionblocks.registry import register_model

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["register_attn_resnet", "se_resnet50", "cbam_resnet50", "eca_resnet50", "bam_resnet50", "sa_resnet50",
           "triplet_resnet50", "sge_resnet50"]


def register_attn_resnet(name: str, *, paper: str, url: str, params: float, macs: float, doc: str,
                         attn: str | None = None, stage_attn: str | None = None, stride_3x3: bool = False,
                         test_input_size: tuple[int, int] = (64, 64),
                         options: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Callable[..., ResNet]:
    """Register ``name``: ResNet-50 with ``attn`` in every bottleneck and/or ``stage_attn`` between the stages,
    the stride on the 3x3 (``stride_3x3``) or on the first 1x1, and the paper's ``params`` (M) and ``macs`` (G
    multiply-adds at 224x224).  ``options`` turns the model's own keyword arguments into ResNet ones.  Returns
    the builder, whose docstring is ``doc``."""
    config = {"attn": attn, "stage_attn": stage_attn, "stride_3x3": stride_3x3}

    def build(**kwargs) -> ResNet:
        return build_resnet(Bottleneck, (3, 4, 6, 3), options(kwargs) if options else kwargs, **config)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return register_model(name, paper=paper, url=url, paper_params=params, paper_macs=macs,
                          test_input_size=test_input_size, output_strides=(8, 16, 32))(build)


se_resnet50 = register_attn_resnet(
    "se_resnet50", attn="se", paper="Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
    url="https://arxiv.org/abs/1709.01507", params=28.09, macs=3.87,
    doc="SE-ResNet-50: 28.09 M params, 3.87 GFLOPs at 224x224 (Hu et al.).")

cbam_resnet50 = register_attn_resnet(
    "cbam_resnet50", attn="cbam", paper="Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018",
    url="https://arxiv.org/abs/1807.06521", params=28.09, macs=3.864,
    doc="ResNet-50 + CBAM in every bottleneck: 28.09 M params, 3.864 GFLOPs at 224x224 (Woo et al.).")

def _eca_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``eca_kernel_sizes=(k1, k2, k3, k4)``: one ECA kernel size per stage instead of the adaptive rule (the
    authors' released ECA-Net50 was trained with ``--ksize 3557``: 3, 5, 5, 7)."""
    sizes: Sequence[int] | None = kwargs.pop("eca_kernel_sizes", None)
    if sizes is None:
        return kwargs
    sizes = tuple(sizes)
    if len(sizes) != 4:
        raise ValueError(f"eca_kernel_sizes: one kernel size per stage (4), got {sizes}")
    if kwargs.get("attn", "eca") != "eca" or "kernel_size" in (kwargs.get("attn_kwargs") or {}):
        raise ValueError("eca_kernel_sizes sets the ECA modules' kernel sizes: pass neither attn= nor "
                         "attn_kwargs={'kernel_size': ...} with it")
    outs = [c * Bottleneck.expansion for c in kwargs.get("channels", (64, 128, 256, 512))]
    if len(set(outs)) != len(sizes):
        raise ValueError(f"eca_kernel_sizes needs 4 stages of distinct widths, got {outs} output channels")
    by_channels = dict(zip(outs, sizes))  # a stage's output channels name it
    extra = dict(kwargs.get("attn_kwargs") or {})

    def eca(channels: int) -> EfficientChannelAttention:
        if channels not in by_channels:
            raise ValueError(f"eca_kernel_sizes: no stage of {sorted(by_channels)} channels has {channels}")
        return EfficientChannelAttention(channels, kernel_size=by_channels[channels], **extra)

    return {**kwargs, "attn": eca, "attn_kwargs": None}


eca_resnet50 = register_attn_resnet(
    "eca_resnet50", attn="eca", paper="Wang et al., ECA-Net, CVPR 2020", url="https://arxiv.org/abs/1910.03151",
    params=25.56, macs=3.86, options=_eca_options,
    doc="ECA-Net50: 25.56 M params, 3.86 GFLOPs at 224x224 (Wang et al.).  The ECA kernel size follows the "
        "paper's adaptive rule (5, 5, 5, 7 over the stages); ``eca_kernel_sizes=(3, 5, 5, 7)`` sets one per stage "
        "(the authors' released ECA-Net50, BangguWu/ECANet ``--ksize 3557``).")

bam_resnet50 = register_attn_resnet(
    "bam_resnet50", stage_attn="bam", paper="Park et al., BAM: Bottleneck Attention Module, BMVC 2018",
    url="https://arxiv.org/abs/1807.06514", params=25.92, macs=3.94,
    doc="ResNet-50 + BAM between stages (on 256, 512 and 1024 channels): 25.92 M params, 3.94 GFLOPs "
        "(multiply-adds) at 224x224 (Park et al., ImageNet table; ours: 25.918 M, 3.940 G).")

sa_resnet50 = register_attn_resnet(
    "sa_resnet50", attn="shuffle_attention", stride_3x3=True,
    paper="Zhang & Yang, SA-Net: Shuffle Attention for Deep Convolutional Neural Networks, ICASSP 2021",
    url="https://arxiv.org/abs/2102.00240", params=25.56, macs=4.12,
    doc="SA-Net-50 (shuffle attention, G = 64): 25.56 M params, 4.12 GFLOPs (multiply-adds) at 224x224 "
        "(Zhang & Yang; ours: 25.558 M, 4.089 G).")

triplet_resnet50 = register_attn_resnet(
    "triplet_resnet50", attn="triplet_attention", stride_3x3=True,
    paper="Misra et al., Rotate to Attend: Convolutional Triplet Attention Module, WACV 2021",
    url="https://arxiv.org/abs/2010.03045", params=25.562, macs=4.169, test_input_size=(32, 32),
    doc="ResNet-50 + triplet attention: 25.562 M params, 4.169 G FLOPs (multiply-adds) at 224x224 "
        "(Misra et al. Table 1; stride on the 3x3 convolution, as in their 4.122 G ResNet-50 baseline).")

sge_resnet50 = register_attn_resnet(
    "sge_resnet50", attn="sge", stride_3x3=True,
    paper="Li et al., Spatial Group-wise Enhance: Improving Semantic Feature Learning in Convolutional Networks, "
          "arXiv 2019", url="https://arxiv.org/abs/1905.09646", params=25.56, macs=4.127,
    doc="SGE-ResNet50 (G = 64): 25.56 M params, 4.127 GFLOPs (multiply-adds) at 224x224 (Li et al. Table; ours: "
        "25.559 M, 4.089 G).")
