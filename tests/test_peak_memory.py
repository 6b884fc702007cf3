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
