"""Every block gives the same output and gradients for an input with unusual strides (an HWC buffer wider than its
channels, permuted to (B, C, H, W): neither contiguous nor channels-last) as for the same values contiguous.
CPU BatchNorm's backward is wrong for such strides (torch 2.13): blocks that normalise their input as it comes
first give it dense strides (``layers.dense_strides``)."""
from __future__ import annotations

import pytest
import torch

import visionblocks as vb
from visionblocks import testing as T

NCHW = [n for n in vb.list_blocks() if vb.block_info(n).layout in ("nchw", "conv")]


def _odd(x: torch.Tensor, how: str) -> torch.Tensor:
    """``x``'s values with unusual strides: ``padded``: a (B, H, W, C + 3) buffer's first C channels, permuted;
    ``hwc``: one dense HWC image permuted and batched with ``[None]`` (``torch.from_numpy(img).permute(2, 0, 1)[None]``):
    channels-last as torch sees it, but its size-1 batch dimension has the stride C, which CPU BatchNorm's backward
    gets wrong."""
    b, c, h, w = x.shape
    if how == "hwc":
        y = x[0].permute(1, 2, 0).contiguous().permute(2, 0, 1)[None]
        assert y.stride() == (c, 1, w * c, c) and y.is_contiguous(memory_format=torch.channels_last)
        return y
    buf = torch.zeros(b, h, w, c + 3, dtype=x.dtype)
    buf[..., :c] = x.permute(0, 2, 3, 1)
    y = buf[..., :c].permute(0, 3, 1, 2)
    assert not y.is_contiguous() and not y.is_contiguous(memory_format=torch.channels_last)
    return y


def _run(m, inputs):
    inputs = [t.detach().requires_grad_() for t in inputs]
    m.zero_grad()
    out = T.flatten_outputs(m(*inputs))
    sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in out).backward()
    return out, [t.grad for t in inputs], [p.grad for p in m.parameters()]


@pytest.mark.parametrize("how,train", [("padded", False), ("padded", True), ("hwc", False)])
@pytest.mark.parametrize("name", NCHW)
def test_unusual_input_strides(name, how, train):
    info = vb.block_info(name)
    m = T.randomize_params(T.build(info), scale=0.05, seed=1, add=True).double().train(train)
    inputs = [t.double() for t in T.make_inputs(info)]
    if inputs[0].dim() != 4:
        pytest.skip("not a 4-d input")
    if how == "hwc":
        inputs = [t[:1] for t in inputs]
    state = {k: v.clone() for k, v in m.state_dict().items()}
    ref = _run(m, [t.contiguous() for t in inputs])
    m.load_state_dict(state)  # (the same BatchNorm statistics for the second run)
    got = _run(m, [_odd(inputs[0], how), *inputs[1:]])
    for a, b in zip(got, ref):
        for x, y in zip(a, b):
            if y is None:
                assert x is None
            else:
                # (float64 rounding of gradients that are zero in exact arithmetic reaches ~1e-11)
                torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9 * float(y.abs().max().clamp_min(1)))


def test_dense_strides_copies_only_unusual_strides():
    from visionblocks.layers import dense_strides
    x = torch.randn(2, 4, 6, 5)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert dense_strides(x) is x and dense_strides(cl) is cl
    hwc = torch.randn(6, 5, 4).permute(2, 0, 1)[None]          # channels-last for torch, batch stride 4
    y = dense_strides(hwc)
    assert y is not hwc and torch.equal(y, hwc) and y.stride() == (120, 1, 20, 4)
    t = x.transpose(2, 3)                                      # neither layout: a contiguous copy
    assert dense_strides(t).is_contiguous() and torch.equal(dense_strides(t), t)
