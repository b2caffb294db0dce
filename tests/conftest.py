"Shared by every test: offline, and the one-thread fixture of the tests that time or compare generations."
import os
import pytest
import torch
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

@pytest.fixture
def one_thread():
    "torch on one thread for the test (two pytest workers share two cores), restored after."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
