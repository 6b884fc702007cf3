"""Tests of :mod:`visionblocks.blocks.mlp.resmlp_block`."""
import torch

import visionblocks as vb

from _reference import _gelu, _perturb


D = torch.float64
def test_resmlp_block_matches_equations():
    m = _perturb(vb.create_block("resmlp_block", 16, 7, init_values=0.1).double().eval())
    x = torch.randn(2, 7, 16, dtype=D)
    aff1 = m.norm1.alpha * x + m.norm1.beta
    z = x.clone()
    for b in range(2):  # Z = X + LS1 * (A Aff(X)) with A (N x N) acting on each channel column
        z[b] = x[b] + m.ls1 * (m.token_fc.weight @ aff1[b] + m.token_fc.bias[:, None])
    aff2 = m.norm2.alpha * z + m.norm2.beta
    mlp = _gelu(aff2 @ m.mlp.fc1.weight.T + m.mlp.fc1.bias) @ m.mlp.fc2.weight.T + m.mlp.fc2.bias
    torch.testing.assert_close(m(x), z + m.ls2 * mlp, rtol=1e-12, atol=1e-12)
def test_resmlp_block_init():
    m = vb.create_block("resmlp_block", 16, 7, init_values=1e-5)
    assert torch.all(m.ls1 == 1e-5) and torch.all(m.ls2 == 1e-5)
    assert torch.all(m.norm1.alpha == 1) and torch.all(m.norm1.beta == 0)


def test_resmlp_layerscale_defaults_block_and_networks():
    # the block: the authors' block default 1e-4; the networks: the paper's value for their depth
    assert torch.all(vb.create_block("resmlp_block", 16, 7).ls1 == torch.tensor(1e-4))
    for name, depth, value in (("resmlp_12", 12, 0.1), ("resmlp_24", 24, 1e-5), ("resmlp_36", 36, 1e-6)):
        net = vb.create_model(name, num_classes=10)
        blocks = [m for m in net.modules() if type(m).__name__ == "ResMLPBlock"]
        assert len(blocks) == depth, name
        for b in blocks:
            assert torch.all(b.ls1 == torch.tensor(value)) and torch.all(b.ls2 == torch.tensor(value)), name
