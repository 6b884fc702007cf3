"""Tests of :mod:`visionblocks.blocks.attention.s2_attention`."""
import pytest
import torch

import visionblocks as vb

from _reference import _gelu, _perturb


D = torch.float64
def _shift_by_hand(x, groups):
    """x (B, H, W, C); ``groups`` gives for each channel quarter (axis, +1/-1); borders keep their value."""
    out = x.clone()
    q = x.shape[-1] // 4
    for i, (axis, step) in enumerate(groups):
        sl = slice(i * q, (i + 1) * q)
        n = x.shape[axis]
        for p in range(n):
            src = p - step
            if not 0 <= src < n:
                continue  # border row/column: left as it was
            if axis == 1:
                out[:, p, :, sl] = x[:, src, :, sl]
            else:
                out[:, :, p, sl] = x[:, :, src, sl]
    return out
def test_s2_attention_matches_hand_shifts_and_split_attention():
    m = _perturb(vb.create_block("s2_attention", 8).double().eval())
    x = torch.randn(2, 8, 5, 6, dtype=D)
    t = x.permute(0, 2, 3, 1) @ m.mlp1.weight.T + m.mlp1.bias
    x1, x2, x3 = t[..., :8], t[..., 8:16], t[..., 16:]
    x1 = _shift_by_hand(x1, [(1, 1), (1, -1), (2, 1), (2, -1)])
    x2 = _shift_by_hand(x2, [(2, 1), (2, -1), (1, 1), (1, -1)])
    sa = m.split_attention
    a = (x1 + x2 + x3).sum((1, 2))
    a = (_gelu(a @ sa.mlp1.weight.T) @ sa.mlp2.weight.T).reshape(2, 3, 8)
    a = torch.exp(a) / torch.exp(a).sum(1, keepdim=True)
    y = x1 * a[:, None, None, 0] + x2 * a[:, None, None, 1] + x3 * a[:, None, None, 2]
    y = (y @ m.mlp2.weight.T + m.mlp2.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(m(x), y, rtol=1e-12, atol=1e-12)
def test_s2_attention_validates_channels():
    with pytest.raises(ValueError, match="divisible"):
        vb.create_block("s2_attention", 10)
