"""Tests of :mod:`visionblocks.models.volo`."""
import torch


def test_volo_class_attention_matches_per_head_loop():
    from visionblocks.models.volo import ClassAttention

    m = ClassAttention(12, 3).double()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    k, v = m.kv(x).split(12, dim=-1)
    q = m.q(x[:, :1])
    heads = []
    for h in range(3):
        s = slice(4 * h, 4 * h + 4)
        a = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / 2.0, dim=-1)    # scale 1 / sqrt(4)
        heads.append(a @ v[..., s])
    torch.testing.assert_close(m(x), m.proj(torch.cat(heads, -1)), rtol=1e-12, atol=1e-12)
