"""``visionblocks.testing.peak_memory`` and the memory the blocks take at a ResNet stage's scale: the tensors
alive at once, against the sizes their equations need."""
import torch

from visionblocks.testing import peak_memory

MB = 4 * 1000 * 1000  # one 1000 x 1000 float32 tensor


def test_peak_memory_counts_what_is_alive_at_once():
    x = torch.randn(1000, 1000)

    def two_alive():
        a = x * 2
        b = a * 3          # a and b alive: 2 units
        del a
        return b + 1       # b and the result: 2 units

    def in_place():
        return (x * 2).relu_().neg_()   # one new tensor, then written in place

    def backward():
        w = torch.randn(1000, 1000, requires_grad=True)
        (x @ w).sum().backward()        # (w, the product: 2 units; backward: the ones-expanded gradient is a
        return w.grad                   # view, w.grad 1 unit, with w and the product freed or not yet)

    assert peak_memory(two_alive) == 2 * MB
    assert peak_memory(in_place) == MB
    assert 2 * MB <= peak_memory(backward) <= 3 * MB + 64  # (+ the scalar loss and its gradient)


def test_token_linear_training_keeps_no_per_sample_weight_gradients():
    # a token-mixing layer over many tokens and few channels (a ResNet stage's 56x56 map as tokens): the weight
    # gradient is one (N', N) product, not B per-sample (N', N) gradients summed down (B N'/C times the input)
    from visionblocks.layers import token_linear
    b, n, c = 4, 1024, 16
    torch.manual_seed(0)
    linear = torch.nn.Linear(n, n)
    x = torch.randn(b, n, c, requires_grad=True)
    out_grad = torch.randn(b, n, c)

    def step():
        token_linear(x, linear).backward(out_grad)

    x_bytes, w_bytes = x.numel() * 4, linear.weight.numel() * 4
    assert peak_memory(step) <= w_bytes + 8 * x_bytes       # the weight's gradient and a few token tables
    torch.testing.assert_close(x.grad, torch.einsum("nm,bnc->bmc", linear.weight, out_grad), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(linear.weight.grad, torch.einsum("bnc,bmc->nm", out_grad, x), rtol=1e-4, atol=1e-4)


def test_halo_attention_inference_keeps_one_attention_map():
    # without autograd the scores accumulate into the relative-position bias and the softmax runs in place: one
    # (queries x keys) map per window (SDPA's math path, which the float bias selects, held three)
    import visionblocks as vb
    torch.manual_seed(0)
    m = vb.create_block("halo_attention", 32, block_size=8, halo_size=3, num_heads=4, dim_head=8).eval()
    x = torch.randn(2, 32, 32, 32)
    blocks, win = (32 // 8) ** 2, 8 + 2 * 3
    attn_map = 2 * 4 * blocks * 8 * 8 * win * win * 4          # B heads blocks (b^2 queries) (win^2 keys), float32
    halo_kv = 2 * 32 * 2 * blocks * win * win * 4              # the unfolded keys and values
    with torch.no_grad():
        assert peak_memory(lambda: m(x)) <= attn_map + 3 * halo_kv + 8 * x.numel() * 4  # (k, v: copies of the unfold)
