"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """The test networks are tiny: one intra-op thread avoids the thread hand-offs that dominate their steps
    (and that blow up when the 2 CI cores are shared with DataLoader workers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
