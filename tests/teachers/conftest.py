import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared, busy CPU, OpenMP threads waiting on each other cost more
    than they gain (a tiny-model step went from 0.3 s to 20 s with 2 threads under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
