"""Per-episode stats merge exactly; feature columns survive the Arrow round trip in every shape."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from robot_rl.data import Feature
from robot_rl.data import stats as st
from robot_rl.data.features import arrow_type, from_arrow, to_arrow


@settings(max_examples=30, deadline=None)
@given(lengths=hs.lists(hs.integers(1, 40), min_size=1, max_size=6), seed=hs.integers(0, 10_000))
def test_aggregated_stats_equal_stats_of_all_frames(lengths, seed):
    rng = np.random.default_rng(seed)
    f = Feature("float32", (3,))
    eps = [
        (rng.normal(size=(n, 3)) * rng.uniform(0.1, 10) + rng.normal()).astype(np.float32)
        for n in lengths
    ]
    agg = st.aggregate([st.feature_stats(x, f) for x in eps])
    x = np.concatenate(eps).astype(np.float64)
    assert np.array_equal(agg["min"], x.min(0)) and np.array_equal(agg["max"], x.max(0))
    np.testing.assert_allclose(agg["mean"], x.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(agg["std"], x.std(0), rtol=1e-9, atol=1e-12)
    assert agg["count"].tolist() == [sum(lengths)]
    # merging is associative: merging merged stats gives the same answer
    two = st.aggregate(
        [
            st.aggregate([st.feature_stats(e, f) for e in eps[:1]]),
            *(st.feature_stats(e, f) for e in eps[1:]),
        ]
    )
    np.testing.assert_allclose(two["std"], agg["std"], rtol=1e-12)


def test_image_stats_are_per_channel_in_unit_range():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (50, 6, 4, 3), dtype=np.uint8)
    s = st.feature_stats(frames, Feature("video", (6, 4, 3)))
    x = frames.astype(np.float64) / 255
    for name, fn in [("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)]:
        assert s[name].shape == (3, 1, 1)
        np.testing.assert_allclose(s[name].ravel(), fn(x, axis=(0, 1, 2)), rtol=1e-12)
    assert s["count"].tolist() == [50]


def test_long_episodes_subsample_frames_for_image_stats():
    assert st.sample_indices(7).tolist() == list(range(7))
    idx = st.sample_indices(10_000)
    assert len(idx) == 1000 and idx[0] == 0 and idx[-1] == 9999  # 10000 ** 0.75 = 1000
    assert np.all(np.diff(idx) > 0)
    frames = np.zeros((400, 2, 2, 3), np.uint8)
    frames[::2] = 255  # every other frame white: an even subsample sees both
    s = st.feature_stats(frames, Feature("video", (2, 2, 3)))
    assert s["count"].tolist() == [len(st.sample_indices(400))] and 0.3 < s["mean"][0, 0, 0] < 0.7


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [("float32", ()), ("float32", (1,)), ("float64", (4,)), ("int64", (2, 3)), ("bool", (1,))],
)
def test_columns_round_trip_in_every_shape(dtype, shape):
    f = Feature(dtype, shape)
    rng = np.random.default_rng(1)
    values = (rng.normal(size=(7, *shape)) * 10).astype(dtype)
    col = to_arrow(values, f)
    assert col.type == arrow_type(f)
    assert (col.type == pa.from_numpy_dtype(np.dtype(dtype))) == f.is_scalar
    back = from_arrow(col, f, "test column")
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, values)
    # slices (episodes in the middle of a file) keep their offset
    assert np.array_equal(from_arrow(col.slice(2, 3), f, "test column"), values[2:5])
