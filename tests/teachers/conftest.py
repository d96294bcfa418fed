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


@pytest.fixture(scope="module")
def bundled_windows(bundled_clip_path):
    """Training windows of the bundled clip at a 64 px short side: what every tiny teacher run here trains on."""
    from lab.data.clips import ClipSpec, ClipWindows
    return ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(64,))
