"""State helpers and the per-row random number generator."""

from __future__ import annotations

import torch

from world_models.base import RowGenerator, normal, reset_rows, select_rows, uniform


def test_row_generator_rows_are_independent_of_the_batch():
    big = RowGenerator(4)
    big.seed_rows(torch.ones(4, dtype=torch.bool), torch.tensor([7, 8, 9, 10]))
    small = RowGenerator(1)
    small.seed_rows(torch.ones(1, dtype=torch.bool), torch.tensor([9]))
    for _ in range(3):
        a = uniform(big, (4, 5), "cpu")
        b = uniform(small, (1, 5), "cpu")
        assert torch.equal(a[2], b[0])
    assert not torch.equal(a[0], a[1])


def test_row_generator_statistics():
    gen = RowGenerator(256)
    gen.seed_rows(torch.ones(256, dtype=torch.bool), torch.arange(256))
    u = torch.cat([uniform(gen, (256, 64), "cpu") for _ in range(4)]).flatten()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    z = normal(gen, (256, 64), "cpu").flatten()
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1.0) < 0.05


def test_select_and_reset_rows():
    state = {"h": torch.arange(6.0).reshape(3, 2)}
    assert torch.equal(select_rows(state, torch.tensor([2, 0]))["h"], torch.tensor([[4.0, 5], [0, 1]]))
    fresh = {"h": torch.full((1, 2), -1.0)}
    out = reset_rows(state, torch.tensor([False, True, False]), fresh)
    assert out["h"][1].tolist() == [-1.0, -1.0] and state["h"][1].tolist() == [2.0, 3.0]
