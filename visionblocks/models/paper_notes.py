"""What each model's paper figures mean against our counts (``ModelInfo.paper_note``), one entry per model.

Why a parameter or multiply-add count differs from the paper's table (rounding, a counter convention, a
misprint), with the evidence.  Read through ``visionblocks.model_info(name).paper_note``; the docs table
(``python -m visionblocks.docs_models``) is generated from it.  Edit the text here, not in the model files.
"""
from __future__ import annotations

__all__ = ["NOTES"]

# one note for all the variants of a family
_CONVMIXER = (
    "the paper reports parameters and throughput but no FLOPs; MACs are checked against our own count of "
    "its configuration"
)

_GMLP = (
    "Table 2 rounds parameters to whole millions (Ti 6M, S 20M, B 73M) and FLOPs to 0.1G; its figures are "
    "not mutually consistent (the exact count of gMLP-S's stated configuration, 19.42M, rounds to 19M, "
    "while gMLP-B's, 73.08M, matches 73M).  paper_params holds the exact count of the stated configuration "
    "(L=30, d_ffn=6d, 196 tokens).  Our multiply-adds (linear layers incl. the SGU's n^2 d_ffn/2 term) "
    "match gMLP-B to 0.5%; for Ti/S the table is higher by 0.07G/0.11G (5%/2.4%), a gap no part of the "
    "network accounts for (patch embedding 0.02/0.04G, head and element-wise ops < 0.02G) and which the "
    "same structure does not show for B: with the table's figures rounded and demonstrably approximate, "
    "the MACs tolerance is widened for Ti/S only."
)

_REDNET = (
    "torch's FLOP counter sees the convolutions (kernel generation included) but not the involution's own "
    "multiply-adds, an element-wise product and sum of C*K^2*H'*W' (0.034 / 0.053 / 0.071 G for "
    "RedNet-26/38/50); with them ours is 1.685 / 2.167 / 2.649 G vs the paper's rounded 1.7 / 2.2 / 2.7 "
    "(within 1.9%), the remainder being what a counter of BN/ReLU/pooling adds (0.02-0.04 G here). "
    "Parameters match the authors' code exactly (9.23 / 12.39 / 15.54 M)."
)

NOTES: dict[str, str] = {
    "acnet_resnet18": (
        "The paper's ImageNet table lists ResNet-18's 11.69 M params and 1.8 G FLOPs, the deployed network, "
        "which is what the registry compares (count_kwargs deploy=True): ours 11.686 M (ResNet-18's 11.690 M "
        "minus the BN vectors of the 16 folded 3x3 conv-BN units, 3,840 numbers: a folded unit keeps one bias "
        "vector instead of BN's weight and bias) and 1.81 G.  As in the authors' code, the 7x7 stem and the 1x1 "
        "shortcuts are plain conv-BN (issue 14; before, the stem was re-parameterizable too).  Training-time "
        "form (deploy=False): 19.03 M params."
    ),
    "coconv_resnet50": (
        "CoConv keeps the kernel count and the multiply-adds of the 3x3 convolution it replaces (dilation adds "
        "none), so CoResNet-50 has exactly the parameters and cost of the authors' baseline, torchvision's "
        "ResNet-50 with the stride on the 3x3: 25.557 M and 4.09 G multiply-adds at 224x224; these are the "
        "figures compared here (the paper's own table could not be consulted for this entry)."
    ),
    "condconv_efficientnet_b0_8e": (
        "torch's counter gives 407.2 M: the same network convention that gives EfficientNet-B0 385.8 M where "
        "the CondConv paper lists 391 M for it (the paper also counts element-wise work such as the SE "
        "gating); CondConv adds 21.4 M here (routing + kernel mixing), 22 M in the paper."
    ),
    "convmixer_1536_20": _CONVMIXER,
    "convmixer_768_32": _CONVMIXER,
    "coord_mobilenetv2": (
        "We count 306.7 M multiply-adds of convolutions and matmuls; the paper's 310 M also counts the two "
        "gate multiplications per element of every attended tensor (2 x 1.90 M), giving 310.5 M."
    ),
    "cotnet50": (
        "The paper's FLOPs come from the authors' ptflops-based counter (utils/flops_counter.py), which also "
        "counts BatchNorm (2 per element), activations, pooling, convolution biases and the local aggregation "
        "(k^2 C H W per CoT block): counted that way our model gives 3.287 G, printed 3.3; torch's flop "
        "counter counts convolutions and matmuls only: 3.231 G."
    ),
    "dbb_resnet18": (
        "The paper's ImageNet table lists ResNet-18's 11.69 M params and 1.8 G FLOPs, the deployed network, "
        "which is what the registry compares (count_kwargs deploy=True): ours 11.686 M (ResNet-18's 11.690 M "
        "minus the BN vectors of the 16 folded 3x3 conv-BN units, 3,840 numbers: a folded unit keeps one bias "
        "vector instead of BN's weight and bias) and 1.81 G.  As in the authors' code, the 7x7 stem and the 1x1 "
        "shortcuts are plain conv-BN (issue 14; before, the stem was re-parameterizable too).  Training-time "
        "form (deploy=False): 26.29 M params."
    ),
    "dy_resnet18": (
        "Chen et al. print parameter counts in units of 2^20: their static ResNet-18 '11.1M' is 11.69e6 / 2^20 "
        "= 11.15 and ResNet-10 '5.2M' is 5.42e6 / 2^20 = 5.17; DY-ResNet-18's '42.7M' is thus 42.7 * 2^20 = "
        "44.77e6 parameters, which we compare with (ours: 44.93e6). A decimal 42.7e6 is impossible at K=4: the "
        "sixteen 3x3 kernels of ResNet-18 alone hold 10.985e6 weights, 43.94e6 when each is replaced by 4 "
        "kernels. Multiply-adds are decimal (ResNet-18: 1.81 G, DY-ResNet-18: 1.85 G; ours 1.858 G)."
    ),
    "eca_resnet50": (
        "ECA-Net's Table 2 lists 24.37 M for both ResNet-50 and ECA-Net50, which no ResNet-50 has "
        "(torchvision's and ours: 25.557 M; ECA adds 80 weights); we compare with 25.56 M."
    ),
    "epsanet50_small": (
        "The paper's FLOPs counter also counts non-convolution operations (its ResNet-50 baseline reads 4.12 G "
        "where torch's flop counter, convolutions and matmuls only, gives 4.09 G); ours: 3.598 G, 0.6% below."
    ),
    "gfnet_s": (
        "The paper's FLOPs include the FFTs of the global filters (its own O(HWD log HW) estimate, about 2-3 M "
        "per layer at 224), which torch.utils.flop_counter does not count; ours (4.451 GMACs) is the rest and "
        "lies that much below the paper's 4.5, hence macs_rel_tol."
    ),
    "gfnet_ti": (
        "The paper's table gives 7 M params, a truncated figure: the architecture it specifies (embed 256, "
        "depth 12, 14x8 filters, 1000-class head), parameter for parameter the authors' code, has 7.51 M (7.25 "
        "M without the head), so paper_params holds 7.51. MACs: ours 1.27 G without the FFTs (not counted by "
        "torch's flop counter), the paper's 1.3 G with them."
    ),
    "gfnet_xs": (
        "The paper's FLOPs include the FFTs of the global filters (its own O(HWD log HW) estimate, about 2-3 M "
        "per layer at 224), which torch.utils.flop_counter does not count; ours (2.833 GMACs) is the rest and "
        "lies that much below the paper's 2.9, hence macs_rel_tol."
    ),
    "gmlp_s16": _GMLP,
    "gmlp_ti16": _GMLP,
    "mixer_b16": (
        "Table 1 gives 59M, rounded; 59.88M is the exact count of its configuration (12 x 768, D_S 384, D_C "
        "3072, patch 16). The paper reports no FLOPs; 12.6G is the figure later papers and mmpretrain (12.61G) "
        "list for Mixer-B/16 (our count: 12.60G)."
    ),
    "mixer_s16": (
        "Table 1 gives 18M, rounded to whole millions; 18.53M is the exact count of its configuration (8 x "
        "512, D_S 256, D_C 2048, patch 16). The paper reports no FLOPs; 3.8G is the figure later MLP papers "
        "list for Mixer-S/16 (our count: 3.78G)."
    ),
    "mobilenetv2": (
        "The paper prints 3.4 M parameters: the TF-slim reference model counts 3.47 M, which is our 3,504,872 "
        "less the 34,112 BatchNorm scales and shifts (3,470,760); the table truncates it to 3.4. With "
        "BatchNorm affine parameters counted (torchvision, Hou et al.'s CA paper), it is 3.50 M."
    ),
    "mobilevit_xxs": (
        "The paper gives 1.3 M parameters, rounded to 0.1 M; the exact count of this configuration is 1.27 M "
        "(2% below the rounded figure), the value compared here; MobileViT-XS/S and MobileViTv2-1.0/2.0, built "
        "by the same code, match the paper's parameter counts within 1%."
    ),
    "mobilevitv2_050": (
        "The paper gives 1.4 M parameters, rounded to 0.1 M; the exact count of this configuration is 1.37 M "
        "(2% below the rounded figure), the value compared here; MobileViT-XS/S and MobileViTv2-1.0/2.0, built "
        "by the same code, match the paper's parameter counts within 1%."
    ),
    "mobilevitv2_200": (
        "Parameters: 18.4 M, as printed by the paper and by the official ml-cvnets model zoo "
        "(docs/source/en/general/README-model-zoo.md, 'MobileViTv2-2.0 | 18.4 M'); ours 18.45 M.  FLOPs: the "
        "paper prints 7.5 G; we count 7.16 G multiply-adds (convolutions and matmuls, "
        "torch.utils.flop_counter).  The paper's 7.5 G is out of line with its own series: the model is the "
        "same network at every width multiplier (FLOPs grow as the square of the width; the stem's 32*alpha = "
        "64 is not clamped at 2.0), and our count of this one code matches the paper's 0.75/1.0/1.25/1.5/1.75 "
        "figures (1.0/1.8/2.8/4.0/5.5 G) to 1.03/1.81/2.82/4.04/5.49 G and every width's parameter count to "
        "the model zoo's to 0.1 M, while the paper's own 1.75 figure scaled by (2/1.75)^2 gives 7.18 G, not "
        "7.5 G; hence macs_rel_tol=0.05."
    ),
    "parnet_l": (
        "Goyal et al. count the re-parameterized network (1x1 branches and BatchNorms folded into the 3x3 "
        "convolutions, compared here with count_kwargs deploy=True) and report FLOPs as 2 x multiply-adds: "
        "54.9 M params, 26.7 GFLOPs = 13.35 G multiply-adds. Training form (what create_model builds): 60.18 M "
        "params, 14.8 G multiply-adds."
    ),
    "parnet_m": (
        "Goyal et al. count the re-parameterized network (1x1 branches and BatchNorms folded into the 3x3 "
        "convolutions, compared here with count_kwargs deploy=True) and report FLOPs as 2 x multiply-adds: "
        "35.6 M params, 17.2 GFLOPs = 8.6 G multiply-adds. Training form (what create_model builds): 38.95 M "
        "params, 9.535 G multiply-adds."
    ),
    "parnet_s": (
        "Goyal et al. count the re-parameterized network (1x1 branches and BatchNorms folded into the 3x3 "
        "convolutions, compared here with count_kwargs deploy=True) and report FLOPs as 2 x multiply-adds: "
        "19.2 M params, 9.7 GFLOPs = 4.85 G multiply-adds. Training form (what create_model builds): 20.98 M "
        "params, 5.374 G multiply-adds."
    ),
    "rednet26": _REDNET,
    "rednet38": _REDNET,
    "rednet50": _REDNET,
    "repvgg_a0": (
        "Paper Table 4 counts the deployed network (compared here: count_kwargs deploy=True): 8.30 M params, "
        "1.4 G FLOPs (multiply-adds); ours deployed: 8,309,384 params, 1.361 G.  The paper gives no training-time "
        "count; ours with deploy=False: 9,108,968 params (3x3 + 1x1 + identity BN branches).  Table 4 truncates "
        "params to two decimals (8.309 -> 8.30) and rounds FLOPs to one (1.36 -> 1.4)."
    ),
    "repvgg_a1": (
        "Paper Table 4 counts the deployed network (compared here: count_kwargs deploy=True): 12.78 M params, "
        "2.4 G FLOPs; ours deployed: 12,789,864 params (measured; 12.79 M), 2.364 G.  The paper gives no "
        "training-time count; ours with deploy=False: 14,092,264 params."
    ),
    "repvgg_b0": (
        "Paper Table 4 counts the deployed network (compared here: count_kwargs deploy=True): 14.33 M params, "
        "3.1 G FLOPs; ours deployed: 14,339,048 params, 3.058 G.  The paper gives no training-time count; ours "
        "with deploy=False: 15,817,960 params."
    ),
    "res2net50_26w_4s": (
        "Gao et al. print 4.2 G for 4.26 G multiply-adds: the authors' Bottle2neck (26w x 4s, split width "
        "floor(planes * 26 / 64), stride on the split 3x3s) counts 4.255 G over its convolutions and "
        "classifier; the table truncates to two digits, as He et al.'s ResNet-50 3.8 (3.86 G) does. Parameters "
        "match (25.70 M)."
    ),
    "resmlp_12": (
        "the paper gives 15M, rounded to whole millions; 15.35M is the exact count of its configuration (12 x "
        "384, patch 16, 196x196 cross-patch layer)"
    ),
    "resnet34": (
        "He et al. print 3.6 for 3.66 G multiply-adds (torchvision's ResNet-34 also counts 3.66 G); the "
        "table's figures are truncated to two digits."
    ),
    "resnet50": (
        "He et al. print 3.8 for 3.86 G multiply-adds: SENet, CBAM and ECA-Net all report 3.86 G for this same "
        "network; the table's figures are truncated to two digits."
    ),
    "rest_base": (
        "The paper's FLOPs come from mmcv's get_model_complexity_info, which counts modules only and so misses "
        "EMSA's matrix products Q K^T and A V (the authors' get_flops.py adds them back only for ResTv2). "
        "Without those products ours is 4.256 GMACs, the paper's 4.3 to its rounding; with them (what "
        "torch.utils.flop_counter counts) 4.396, hence macs_rel_tol.  The figures (Lite/Small/Base "
        "10.49/13.66/30.28 M, 1.4/1.9/4.3 G) are the paper's; the official README (wofmanaf/ResT) lists the "
        "same FLOPs (11M/14M/30M)."
    ),
    "rest_lite": (
        "The paper's FLOPs come from mmcv's get_model_complexity_info, which counts modules only and so misses "
        "EMSA's matrix products Q K^T and A V (the authors' get_flops.py adds them back only for ResTv2). "
        "Without those products ours is 1.393 GMACs, the paper's 1.4 to its rounding; with them (what "
        "torch.utils.flop_counter counts) 1.467, hence macs_rel_tol.  The figures (Lite/Small/Base "
        "10.49/13.66/30.28 M, 1.4/1.9/4.3 G) are the paper's; the official README (wofmanaf/ResT) lists the "
        "same FLOPs (11M/14M/30M)."
    ),
    "rest_small": (
        "The paper's FLOPs come from mmcv's get_model_complexity_info, which counts modules only and so misses "
        "EMSA's matrix products Q K^T and A V (the authors' get_flops.py adds them back only for ResTv2). "
        "Without those products ours is 1.934 GMACs, the paper's 1.9 to its rounding; with them (what "
        "torch.utils.flop_counter counts) 2.027, hence macs_rel_tol.  The figures (Lite/Small/Base "
        "10.49/13.66/30.28 M, 1.4/1.9/4.3 G) are the paper's; the official README (wofmanaf/ResT) lists the "
        "same FLOPs (11M/14M/30M)."
    ),
    "sa_resnet50": (
        "The paper gives ResNet-50 25.56 M / 4.12 GFLOPs plus SA's '300 parameters and 2.76e-3 GFLOPs'; SA's "
        "own definition (W1, b1, W2, b2 and the GroupNorm affine, C/2G each) adds 3C/G = 708 parameters over "
        "the 16 bottlenecks, as does the authors' code.  Their FLOPs counter also counts "
        "BatchNorm/activations/pooling (4.12 G for ResNet-50); torch's flop counter counts convolutions and "
        "matmuls only: 4.089 G."
    ),
    "scnet50": (
        "The authors list SCNet-50 at 4.0 G multiply-adds (README of MCG-NKU/SCNet; 25.56 M params, which we "
        "match exactly). Counting only convolutions and the classifier, the network is ResNet-50 with the "
        "stride on the 3x3 (4.09 G) where each of the 13 unstrided 3x3 convolutions costs 3/4 + 1/64 of its "
        "plain cost (K1, K3, K4 at full resolution, K2 at 1/16) and each of the 3 strided ones 1/2 + 1 + 1/16 "
        "(K3 and K2 run before the stride): 4.09 - 13 x 0.0271 + 3 x 0.0650 = 3.93 G, and we count 3.925 G "
        "(K2's floor-mode pooling, the authors' AvgPool2d(4, 4), keeps 3x3 of a 14x14 map and 1x1 of a 7x7 one, "
        "a little under 1/16); the convolutions alone cannot reach 4.0 "
        "G, so the authors' figure counts more than multiply-adds of convolutions (or rounds up)."
    ),
    "sge_resnet50": (
        "The paper's FLOPs counter also counts BatchNorm/activations/pooling (4.122 G for its ResNet-50 "
        "baseline, 4.127 G with SGE); torch's flop counter counts convolutions and matmuls only: 4.089 G "
        "(SGE's own multiply-adds are not convolutions)."
    ),
    "triplet_resnet50": (
        "The paper's FLOPs come from a ptflops-style counter that also counts BatchNorm (2 per element), "
        "activations, pooling and convolution biases: counted that way our model gives 4.169 G, the paper's "
        "figure (and 4.122 G for its ResNet-50 baseline); torch's flop counter counts convolutions and matmuls "
        "only: 4.136 G."
    ),
    "volo_d1": (
        "The paper gives VOLO-D1 27 M parameters and 6.8 G FLOPs at 224 (the official README, sail-sg/volo, "
        "also lists 'volo_d1 | 27M | 224 | 84.2').  27 M is rounded to 1 M: the official configuration (7x7/2 "
        "+ two 3x3 stem convs, 4 outlookers at 192, 14 transformer blocks and 2 class blocks at 384, class and "
        "token-labelling heads) has 26.63 M, compared here as 26.6.  We count 6.92 G multiply-adds "
        "(torch.utils.flop_counter): stem and patch embedding 1.20 G, outlookers 1.01 G, downsampling 0.06 G, "
        "transformer blocks 4.46 G of which the attention products QK^T and AV are 0.41 G, class blocks 0.12 "
        "G, token-labelling head 0.075 G.  Without that head (a training device, though the official inference "
        "also applies it) the count is 6.84 G, 0.6% from 6.8; without the attention products 6.51 G.  The "
        "paper does not say what it counted, so the 1.7% gap stays unresolved and the tolerance is 2%."
    ),
}
