"""`torch_threads`: a block runs with a fixed thread count, restored afterwards."""

from __future__ import annotations

import pytest
import torch

from world_models.threads import torch_threads


def test_threads_are_fixed_inside_and_restored_after():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0: leave torch's count
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="--threads must be >= 0"), torch_threads(-1):
        pass
