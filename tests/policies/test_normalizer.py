"""Normalizer: min-max to [-1, 1], mean/std, zero-spread guard, bad stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_rl.core.errors import ConfigError
from robot_rl.policies import Normalizer

KEY = "observation.state"


def make(stats: dict, mode: str = "min_max") -> Normalizer:
    dim = len(next(iter(stats.values())))
    return Normalizer.from_stats({KEY: stats}, {KEY: (dim,)}, {KEY: mode})


def test_min_max_maps_range_to_unit_box():
    norm = make({"min": [-2.0, 0.0, 10.0], "max": [2.0, 1.0, 30.0]})
    lo, hi = torch.tensor([[-2.0, 0.0, 10.0]]), torch.tensor([[2.0, 1.0, 30.0]])
    assert torch.allclose(norm.normalize(KEY, lo), -torch.ones(1, 3))
    assert torch.allclose(norm.normalize(KEY, hi), torch.ones(1, 3))
    # midpoint of [10, 30] is 20 -> 0; a quarter of the way -> -0.5
    assert torch.allclose(
        norm.normalize(KEY, torch.tensor([0.0, 0.5, 15.0])), torch.tensor([0.0, 0.0, -0.5])
    )


def test_mean_std_standardizes():
    norm = make({"mean": [1.0, -3.0], "std": [2.0, 0.5]}, mode="mean_std")
    out = norm.normalize(KEY, torch.tensor([[1.0, -3.0], [3.0, -2.5]]))
    assert torch.allclose(out, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))


@pytest.mark.parametrize("mode", ["min_max", "mean_std"])
def test_constant_dimension_maps_to_zero_not_nan(mode):
    stats = {"min": [5.0, -1.0], "max": [5.0, 1.0], "mean": [5.0, 0.0], "std": [0.0, 1.0]}
    norm = make(stats, mode)
    x = torch.tensor([[5.0, 0.5]])
    y = norm.normalize(KEY, x)
    assert torch.isfinite(y).all()
    assert y[0, 0].item() == 0.0
    assert torch.equal(norm.unnormalize(KEY, torch.zeros(1, 2))[0, 0], torch.tensor(5.0))
    assert torch.allclose(norm.unnormalize(KEY, y), x)


@settings(max_examples=60, deadline=None)
@given(
    lo=st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3),
    span=st.lists(st.floats(0.0, 1e3), min_size=3, max_size=3),
    u=st.lists(st.floats(-0.5, 1.5), min_size=3, max_size=3),
    mode=st.sampled_from(["min_max", "mean_std"]),
)
def test_round_trip(lo, span, u, mode):
    lo_a, span_a = np.array(lo), np.array(span)
    stats = {"min": lo_a, "max": lo_a + span_a, "mean": lo_a + span_a / 2, "std": span_a / 3}
    norm = make(stats, mode)
    x = torch.tensor(lo_a + np.array(u) * span_a, dtype=torch.float64)
    back = norm.unnormalize(KEY, norm.normalize(KEY, x))
    assert torch.allclose(back, x, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_stats_name_the_key(bad):
    with pytest.raises(ConfigError, match=r"'observation.state'\.max has non-finite"):
        make({"min": [0.0, 0.0], "max": [1.0, bad]})


def test_missing_or_misshapen_stats_are_config_errors():
    with pytest.raises(ConfigError, match="no entry for 'action'"):
        Normalizer.from_stats(
            {KEY: {"min": [0], "max": [1]}}, {"action": (1,)}, {"action": "min_max"}
        )
    with pytest.raises(ConfigError, match=r"has shape \(3,\), expected \(2,\)"):
        make({"min": [0.0, 0.0], "max": [1.0, 1.0, 1.0]})
    with pytest.raises(ConfigError, match="must be one of"):
        Normalizer({KEY: (2,)}, {KEY: "minmax"})


def test_stats_live_in_state_dict():
    norm = make({"min": [0.0, 2.0], "max": [4.0, 3.0]})
    fresh = Normalizer({KEY: (2,)}, {KEY: "min_max"})
    fresh.load_state_dict(norm.state_dict())
    x = torch.tensor([1.0, 2.5])
    assert torch.equal(fresh.normalize(KEY, x), norm.normalize(KEY, x))
