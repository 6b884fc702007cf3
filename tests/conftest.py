
import os

import pytest
import torch

# At most 2 intra-op threads, and no more threads in all than cores: with pytest-xdist's workers each running
# OpenMP's default team, oneDNN's channels-last kernels spin-wait on oversubscribed cores (a model forward of
# 0.2 s took 2-4 minutes under -n 2 with 2 threads per worker on 2 cores).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads(), (os.cpu_count() or 1) // _WORKERS)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
