"""Tests of :mod:`visionblocks.layers.shuffle`."""
import pytest
import torch

from visionblocks.layers import channel_shuffle, is_channels_last


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups", [2, 3])
def test_channel_shuffle_by_index_in_both_layouts(groups, channels_last):
    """out channel j * g + i is input channel i * n + j (g groups of n); a channels-last map stays channels-last
    (ATen's kernel), with the same values and gradient."""
    x = torch.randn(2, 12, 5, 6, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = channel_shuffle(x, groups)
    n = 12 // groups
    ref = torch.stack([x[:, i * n + j] for j in range(n) for i in range(groups)], dim=1)
    assert torch.equal(out, ref)
    assert is_channels_last(out) == channels_last
    g = torch.randn_like(ref)
    assert torch.equal(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0])
