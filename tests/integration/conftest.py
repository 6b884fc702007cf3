import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Many small forwards: one thread is faster than two on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
