"""One torch thread for these tests: on a shared CPU, OpenMP spin-waiting made tiny decodes 10-25x
slower with 2 threads than with 1 (measured 4.4 s vs 0.27 s for a wan2.1-tiny decode)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Same decoders as the session fixtures in tests/conftest.py, but built after the thread count is
# set (building them with 2 contended threads took 14 s instead of 0.04 s).
@pytest.fixture(scope="module")
def tiny_wan(_one_thread):
    from lab.models import load_decoder
    return load_decoder("wan2.1-tiny")


@pytest.fixture(scope="module")
def tiny_ltx(_one_thread):
    from lab.models import load_decoder
    return load_decoder("ltx-video-tiny")
