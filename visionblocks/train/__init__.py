"""Train and compare: does a block help on my data, and at what cost?

``visionblocks train`` trains a registered model (optionally with an attention block) on an ImageFolder tree, a
CIFAR archive or the scikit-learn digits under one fixed recipe, resumably, on one process or under ``torchrun``;
``visionblocks compare`` trains several variants under the identical recipe and writes accuracy beside cost.
See ``docs/training.md``.

>>> from visionblocks.train import TrainConfig, train
>>> res = train(TrainConfig(model="resnet18", attn="cbam", data="digits", epochs=3, out="runs/cbam"))
"""
from .errors import TrainError
from .engine import RunResult, TrainConfig, config_for_resume, train
from .compare import CompareResult, compare

__all__ = ["TrainError", "TrainConfig", "RunResult", "train", "config_for_resume", "compare", "CompareResult"]
