"""The noise interface: TorchNoise, the per-row RowGenerator and the inverse-CDF sampler."""

from __future__ import annotations

import pytest
import torch

from world_models.sampling import Noise, RowGenerator, TorchNoise, as_noise, inverse_cdf


def seeded(keys: list[int], **kwargs) -> RowGenerator:
    gen = RowGenerator(len(keys), **kwargs)
    gen.seed_rows(torch.ones(len(keys), dtype=torch.bool), torch.tensor(keys))
    return gen


@pytest.mark.parametrize("draw", ["uniform", "normal", "randint", "categorical"])
def test_row_generator_rows_are_independent_of_the_batch(draw):
    big, small = seeded([7, 8, 9, 10]), seeded([9])
    probs = torch.tensor([0.2, 0.0, 0.5, 0.3])
    calls = {
        "uniform": lambda g, b: g.uniform((b, 5), "cpu"),
        "normal": lambda g, b: g.normal((b, 3, 3), "cpu"),  # odd count: the last pair is cut
        "randint": lambda g, b: g.randint(6, (b, 7), "cpu"),
        "categorical": lambda g, b: g.categorical(probs.expand(b, 9, 4)),
    }
    for _ in range(3):
        a, b = calls[draw](big, 4), calls[draw](small, 1)
        assert torch.equal(a[2], b[0])
    assert not torch.equal(a[0], a[1])


def test_row_generator_blocks_do_not_change_the_numbers():
    for n in (1, 2, 7, 40):
        full, blocked = seeded([3, 4, 5]), seeded([3, 4, 5], block=3)
        assert torch.equal(full.normal((3, n), "cpu"), blocked.normal((3, n), "cpu"))
        assert torch.equal(full.uniform((3, n), "cpu"), blocked.uniform((3, n), "cpu"))


def test_row_generator_statistics_and_counters():
    gen = seeded(list(range(256)))
    u = torch.cat([gen.uniform((256, 64), "cpu") for _ in range(4)]).flatten()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    z = gen.normal((256, 64), "cpu")
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1.0) < 0.05
    even, odd = z[:, 0::2].flatten(), z[:, 1::2].flatten()  # cos and sin of one pair
    assert abs(float(torch.corrcoef(torch.stack([even, odd]))[0, 1])) < 0.05
    assert gen.counters.tolist() == [5] * 256
    with pytest.raises(ValueError, match="B = 256"):
        gen.uniform((3, 4), "cpu")


def test_inverse_cdf_never_draws_zero_probability_classes():
    probs = torch.tensor([0.0, 0.5, 0.0, 0.5])
    u = torch.tensor([0.0, 0.25, 0.5, 0.999999])
    assert inverse_cdf(probs.expand(4, 4), u).tolist() == [1, 1, 3, 3]
    counts = torch.bincount(TorchNoise(torch.Generator().manual_seed(0)).categorical(
        torch.tensor([0.1, 0.6, 0.3]).expand(20_000, 3)), minlength=3) / 20_000
    torch.testing.assert_close(counts, torch.tensor([0.1, 0.6, 0.3]), atol=0.02, rtol=0)


def test_as_noise():
    gen = torch.Generator().manual_seed(1)
    noise = as_noise(gen)
    assert isinstance(noise, TorchNoise) and isinstance(noise, Noise)
    assert torch.equal(noise.normal((3,), "cpu"), torch.randn(3, generator=torch.Generator().manual_seed(1)))
    rows = RowGenerator(2)
    assert as_noise(rows) is rows and isinstance(as_noise(None), TorchNoise)
    with pytest.raises(TypeError, match="Noise"):
        as_noise(3)  # type: ignore[arg-type]
