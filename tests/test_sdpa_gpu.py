"""Softmax-attention blocks reach the fused SDPA kernels (flash or memory-efficient) on CUDA.

Every block whose forward calls ``F.scaled_dot_product_attention`` is found by recording the calls (on the CPU,
at the bench's configuration); on CUDA its forward runs in bfloat16 and float16 under
``torch.nn.attention.sdpa_kernel([FLASH_ATTENTION, EFFICIENT_ATTENTION])`` (so the math fallback is excluded:
no eligible kernel raises) and must be as close to the float32 math result as the math backend in the same
dtype is (parameters randomised, so that zero-initialised gates such as DANet's do not hide the attention).
Skipped where CUDA is absent (issue 18: the code must be ready for a GPU that no session is guaranteed).
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from visionblocks import bench, registry, testing

CFG = bench.BenchConfig(batch=2, shape=(64, 16, 16))

# Blocks known to call SDPA (a block that stops calling it, or a new one that starts, shows up below).
SDPA_BLOCKS = {"coatnet_attention", "danet", "halo_attention", "mobilevit_attention", "muse", "self_attention",
               "simplified_self_attention"}

# Blocks whose calls rule out the flash kernel (it takes no mask and needs equal head dims): the memory-efficient
# kernel serves them.  mobilevit_attention passes a boolean mask only when H or W is not a multiple of its
# patch (padded tokens), not at this configuration.
FLASH_RULED_OUT = {
    "coatnet_attention": "relative position bias passed as an additive attn_mask",
    "halo_attention": "additive mask over the padded halo window; value head dim differs from the query's",
    "danet": "position attention: value head dim C differs from the query/key head dim C/8",
}


def _build(name, device="cpu", dtype=torch.float32):
    m, inputs = bench.build_for_bench(registry.block_info(name), CFG)
    m = testing.randomize_params(m, scale=0.1, add=True).to(device=device, dtype=dtype).eval()
    return m, tuple(t.to(device=device, dtype=dtype) for t in inputs)


def _record_calls(monkeypatch, names):
    """{block: [(q shape, k shape, v shape, has mask)]} of the SDPA calls of one forward of each block."""
    calls, real, current = {}, F.scaled_dot_product_attention, [None]

    def recording(q, k, v, attn_mask=None, *args, **kwargs):
        calls.setdefault(current[0], []).append((q.shape, k.shape, v.shape, attn_mask is not None))
        return real(q, k, v, attn_mask, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    for name in names:
        current[0] = name
        m, inputs = _build(name)
        # under autograd: on the CPU, inference in halo attention and DANet takes a one-map path of its own
        # where SDPA's CPU math path would hold several; on CUDA they call SDPA in inference too (DANet's channel
        # attention writes its small (C, C) map out under autograd on the CPU, for its gradient's accuracy: its
        # position attention is the call recorded here)
        m(*(t.requires_grad_() if t.is_floating_point() else t for t in inputs))
    return calls


def test_the_sdpa_blocks_and_the_ones_flash_cannot_serve(monkeypatch):
    calls = _record_calls(monkeypatch, sorted(SDPA_BLOCKS))
    assert set(calls) == SDPA_BLOCKS
    for name, cs in calls.items():
        no_flash = any(mask or q[-1] != v[-1] or q[-1] != k[-1] for q, k, v, mask in cs)
        assert no_flash == (name in FLASH_RULED_OUT), (name, cs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", sorted(SDPA_BLOCKS))
def test_fused_sdpa_kernels_run_and_match_math(name, dtype):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available: the fused SDPA kernels are CUDA kernels")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    m32, x32 = _build(name, "cuda")
    m, inputs = copy.deepcopy(m32).to(dtype), tuple(t.to(dtype) for t in x32)
    with torch.no_grad():
        with sdpa_kernel([SDPBackend.MATH]):
            ref = m32(*x32)
            math_out = m(*inputs).float()
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            out = m(*inputs).float()   # raises when neither fused kernel can serve a call
    assert torch.isfinite(out).all()

    def err(o):
        return ((o - ref).norm() / ref.norm()).item()

    # the fused kernels accumulate in float32: no further from the float32 result than the math backend, up to 2x
    assert err(out) <= 2 * err(math_out) + 1e-3, (name, err(out), err(math_out))
