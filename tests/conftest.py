from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# tiny networks: a second thread costs more in synchronisation than it gains (and the machine
# may be shared); module-scoped fixtures run before the per-test fixture below, so set it here too
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs on one torch thread, and one that changes the count (a command run with
    threads=) does not leak it into the next."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the checkout")
    return SHARED_DATA
