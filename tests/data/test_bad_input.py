"""Bad input to the writer: one-line errors naming the feature and value, nothing saved is lost."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.core.errors import DatasetError
from robot_rl.data import DatasetWriter, Feature, LeRobotDataset, validate_dataset

CAM = "observation.images.wrist"


def features() -> dict[str, Feature]:
    return {
        "observation.state": Feature("float32", (5,)),
        "action": Feature("float32", (7,)),
        "next.done": Feature("bool", (1,)),
        "step": Feature("int64", ()),
        CAM: Feature("video", (16, 16, 3)),
    }


def episode(n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "observation.state": rng.normal(size=(n, 5)).astype(np.float32),
        "action": rng.normal(size=(n, 7)).astype(np.float32),
        "next.done": np.zeros((n, 1), bool),
        "step": np.arange(n),
        CAM: np.full((n, 16, 16, 3), 7 * seed, np.uint8),
    }


@pytest.fixture
def writer(tmp_path):
    """A writer holding two committed episodes."""
    w = DatasetWriter.create(tmp_path / "ds", 10, features(), flush_every=1)
    w.add_episode(episode(seed=0), "t", extras={"success": True})
    w.add_episode(episode(seed=1), "t", extras={"success": False})
    yield w
    w.close()


def rejected(w: DatasetWriter, frames, match: str, **kw) -> str:
    with pytest.raises(DatasetError, match=match) as e:
        w.add_episode(frames, kw.pop("task", "t"), extras=kw.pop("extras", {"success": True}))
    msg = str(e.value)
    assert "\n" not in msg
    # nothing previously saved is lost, nothing half-added is buffered, and the writer goes on
    assert w.num_episodes == 2
    ds = LeRobotDataset(w.root)
    assert ds.num_episodes == 2
    assert np.array_equal(ds.episode(1)["action"], episode(seed=1)["action"])
    return msg


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("action", np.zeros((6, 6), np.float32), r"'action' has shape \(6, 6\) .*\(7,\)"),
        ("action", np.zeros((5, 7), np.float32), r"different numbers of frames"),
        ("observation.state", np.zeros((6, 5, 1), np.float32), r"'observation.state' has shape"),
        (CAM, np.zeros((6, 16, 16, 3), np.float32), rf"'{CAM}' must be uint8"),
        (CAM, np.zeros((6, 3, 16, 16), np.uint8), rf"'{CAM}' has shape \(6, 3, 16, 16\)"),
        ("next.done", np.zeros((6, 1), np.float32), r"'next.done' is declared bool"),
        ("step", np.zeros(6, np.float64), r"'step' is declared int64"),
    ],
)
def test_wrong_shapes_and_dtypes_are_rejected(writer, key, value, match):
    bad = episode(seed=2)
    bad[key] = value
    rejected(writer, bad, match)
    writer.add_episode(episode(seed=2), "t", extras={"success": True})
    assert LeRobotDataset(writer.root).num_episodes == 3


def test_nan_and_inf_are_rejected_naming_frame_and_value(writer):
    bad = episode(seed=2)
    bad["action"][3, 4] = np.nan
    msg = rejected(writer, bad, r"'action' has a non-finite value at frame 3")
    assert "nan" in msg
    bad = episode(seed=2)
    bad["observation.state"][0, 0] = np.inf
    assert "inf" in rejected(writer, bad, r"'observation.state' .* at frame 0")


def test_missing_and_undeclared_keys_are_rejected(writer):
    bad = episode(seed=2)
    del bad["next.done"]
    rejected(writer, bad, r"missing feature\(s\) \['next.done'\]")
    bad = episode(seed=2)
    bad["observation.velocity"] = np.zeros((6, 3))
    rejected(writer, bad, r"undeclared key\(s\) \['observation.velocity'\]")


def test_extras_and_task_are_checked(writer):
    rejected(writer, episode(seed=2), r"extras keys \[\] differ", extras={})
    rejected(
        writer, episode(seed=2), r"extras\['success'\] = 'yes' is string", extras={"success": "yes"}
    )
    rejected(writer, episode(seed=2), r"extras\['success'\] must be", extras={"success": [1]})
    rejected(writer, episode(seed=2), "task must be a non-empty", task="")
    # numpy scalars are accepted as their Python values
    writer.add_episode(episode(seed=2), "t", extras={"success": np.bool_(True)})
    assert LeRobotDataset(writer.root).episodes_table().column("success").to_pylist()[-1] is True


def test_add_frame_rejects_a_bad_frame_and_keeps_the_good_ones(writer):
    ep = episode(3, seed=4)
    frames = [{k: v[t] for k, v in ep.items()} for t in range(3)]
    writer.add_frame(frames[0])
    with pytest.raises(DatasetError, match=r"'action' has shape \(6,\) but \(7,\) was declared"):
        writer.add_frame({**frames[1], "action": np.zeros(6, np.float32)})
    with pytest.raises(DatasetError, match=r"'action' has a non-finite value \(\[nan"):
        writer.add_frame({**frames[1], "action": np.full(7, np.nan, np.float32)})
    writer.add_frame(frames[1])
    writer.add_frame(frames[2])
    assert writer.save_episode("t", extras={"success": True}) == 2
    assert np.array_equal(LeRobotDataset(writer.root).episode(2)["action"], ep["action"])
    assert validate_dataset(writer.root) == []


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("float16", (3,)), "dtype must be one of"),
        (("float32", (0,)), "shape entries must be >= 1"),
        (("float32", (3,), ["a", "b"]), r"shape \(3,\) but 2 names"),
        (("video", (15, 16, 3)), "must be even"),
        (("video", (16, 16)), r"must be \(H, W, 3\)"),
    ],
)
def test_bad_feature_declarations(args, match):
    with pytest.raises(DatasetError, match=match):
        Feature(*args)


def test_feature_declarations_are_normalised():
    f = Feature("float32", np.array([3]), [])  # e.g. a torch.Size and a spec without names
    assert f.shape == (3,) and f.names is None
    assert Feature("video", (4, 6, 3), ["a", "b", "c"]).names == ["height", "width", "channels"]


def test_bad_writer_arguments(tmp_path):
    with pytest.raises(DatasetError, match="reserved"):
        DatasetWriter.create(tmp_path / "a", 10, {"index": Feature("int64", ())})
    with pytest.raises(DatasetError, match="fps must be"):
        DatasetWriter.create(tmp_path / "b", 0, features())
    with pytest.raises(DatasetError, match="must be a Feature"):
        DatasetWriter.create(tmp_path / "c", 10, {"action": ("float32", (7,))})
    assert not (tmp_path / "b").exists()
