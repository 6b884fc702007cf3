"""visionblocks inside the frameworks users train with (optional extras; visionblocks itself needs only torch).

* :mod:`visionblocks.integrations.timm`: :func:`~visionblocks.integrations.timm.timm_attn`, a block as timm's
  ``attn_layer`` (``timm.create_model("resnet50", block_args={"attn_layer": timm_attn("cbam")})``).
* :mod:`visionblocks.integrations.ultralytics`: importing it makes every ``nchw`` block usable by its registry name
  in a YOLO model YAML (``- [-1, 1, cbam, []]``), channels taken from the layer before, so one YAML works at every
  width scale.

Neither submodule is imported here: each imports its framework only when used.  ``insert``/``replace``
(:mod:`visionblocks.surgery`) work on timm and torchvision models as on any ``nn.Module``.
"""
__all__: list[str] = []
