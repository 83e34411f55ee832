"""Behaviour-cloning trainer: schedule, multi-dataset data, exact resume, checkpoints, bad data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from robot_rl.algos.bc import (
    BCConfig,
    TrainingError,
    TrainRun,
    build_policy,
    lr_factor,
    train_bc,
)
from robot_rl.algos.bc_data import BCData
from robot_rl.algos.evaluate import EvalResult
from robot_rl.algos.rollout import RolloutStats
from robot_rl.algos.train_state import recover_checkpoint, write_checkpoint
from robot_rl.core.errors import ConfigError, DatasetError
from robot_rl.data import DatasetWriter, Feature
from robot_rl.policies import CheckpointError, load
from tests.policies.conftest import tiny_config

FEATURES = {"observation.state": Feature("float32", (3,)), "action": Feature("float32", (2,))}


def write_dataset(root: Path, task: str, episodes: int = 4, seed: int = 0, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    with DatasetWriter.create(root, fps=10, features=FEATURES) as w:
        for _ in range(episodes):
            t = int(rng.integers(6, 12))
            state = rng.normal(size=(t, 3)).astype(np.float32) + offset
            action = np.tanh(state[:, :2]).astype(np.float32)
            w.add_episode({"observation.state": state, "action": action}, task=task)
    return root


@pytest.fixture()
def data_dirs(tmp_path):
    a = write_dataset(tmp_path / "a", "push the cube", seed=1)
    b = write_dataset(tmp_path / "b", "reach the goal", seed=2, offset=5.0)
    return a, b


def tiny_policy_dict(kind: str = "diffusion") -> dict:
    cfg = tiny_config(kind).to_dict()
    for k in ("state_dim", "action_dim", "task", "cameras", "image_size", "instructions"):
        cfg.pop(k)
    return {"name": kind, **cfg}


def test_lr_factor_warmup_then_cosine_to_zero():
    cfg = BCConfig(steps=14, warmup_steps=4)
    # Warmup: (step + 1) / (warmup + 1); then 0.5 (1 + cos(pi (step - 4) / 10)).
    assert lr_factor(0, cfg) == pytest.approx(0.2)
    assert lr_factor(3, cfg) == pytest.approx(0.8)
    assert lr_factor(4, cfg) == pytest.approx(1.0)
    assert lr_factor(9, cfg) == pytest.approx(0.5)
    assert lr_factor(14, cfg) == pytest.approx(0.0, abs=1e-12)
    const = BCConfig(steps=14, warmup_steps=0, lr_schedule="constant")
    assert lr_factor(13, const) == 1.0


@pytest.mark.parametrize(
    "field, value, match",
    [("steps", 0, "algo.steps"), ("lr", -1.0, "algo.lr"), ("lr_schedule", "step", "cosine")],
)
def test_bc_config_rejects_bad_values(field, value, match):
    with pytest.raises(ConfigError, match=match):
        BCConfig(**{field: value})


def test_several_datasets_merge_instructions_and_stats(data_dirs):
    data = BCData(data_dirs, obs_horizon=2, horizon=8)
    assert data.instructions == ["push the cube", "reach the goal"]
    # The stats equal those computed over all frames of both datasets at once.
    frames = np.concatenate([d._obs["observation.state"].numpy() for d in data.windows])
    assert np.allclose(data.stats["observation.state"]["mean"], frames.mean(0), atol=1e-5)
    assert np.allclose(data.stats["observation.state"]["std"], frames.std(0), atol=1e-5)
    assert np.allclose(data.stats["observation.state"]["max"], frames.max(0))
    # task_index is remapped into the merged instruction list.
    first_b = len(data.windows[0])
    batch = data.sample(torch.tensor([0, first_b, len(data) - 1]))
    assert batch["task_index"].tolist() == [0, 1, 1]
    assert batch["observation.state"].shape == (3, 2, 3)
    assert batch["action"].shape == (3, 8, 2)
    # Two instructions: the policy is built language-conditioned.
    policy = build_policy(tiny_policy_dict(), data, "a+b")
    assert policy.config.instructions == ("push the cube", "reach the goal")
    single = build_policy(tiny_policy_dict(), BCData(data_dirs[:1], 2, 8), "a")
    assert not single.config.uses_text


def test_dataset_with_nan_actions_is_rejected_naming_episode(tmp_path):
    root = write_dataset(tmp_path / "nan", "push the cube")
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    actions = table.column("action").to_pylist()
    actions[7][1] = float("nan")
    table = table.set_column(
        table.schema.get_field_index("action"),
        "action",
        pa.array(actions, type=table.schema.field("action").type),
    )
    pq.write_table(table, path)
    with pytest.raises(DatasetError, match=r"'action' has non-finite values .* episode \d+ frame"):
        BCData([root], 2, 8)


def test_datasets_with_other_shapes_do_not_mix(tmp_path, data_dirs):
    other = tmp_path / "other"
    feats = {"observation.state": Feature("float32", (4,)), "action": Feature("float32", (2,))}
    with DatasetWriter.create(other, fps=10, features=feats) as w:
        w.add_episode(
            {"observation.state": np.zeros((5, 4), np.float32), "action": np.zeros((5, 2))},
            task="x",
        )
    with pytest.raises(DatasetError, match="datasets must share features"):
        BCData([data_dirs[0], other], 2, 8)


def test_resume_continues_exactly(data_dirs, tmp_path):
    data = BCData(data_dirs[:1], 2, 8)
    cfg = BCConfig(steps=6, batch_size=4, warmup_steps=2, lr=1e-3)

    torch.manual_seed(0)
    straight = build_policy(tiny_policy_dict(), data, "a")
    train_bc(straight, data, cfg, TrainRun(tmp_path / "straight", 0, 6, 1, seed=3))

    torch.manual_seed(0)
    first = build_policy(tiny_policy_dict(), data, "a")
    # Killed after step 3: its last checkpoint is at step 3 (save_every=3).
    with pytest.raises(_Stop):
        train_bc(
            first, data, cfg, TrainRun(tmp_path / "split", 0, 3, 1, seed=3), progress=_stop_at(3)
        )
    ckpt = tmp_path / "split" / "checkpoints" / "last"
    assert json.loads((ckpt / "trainer.json").read_text())["step"] == 3

    torch.manual_seed(123)  # resume restores every RNG it needs; this must not matter
    second = build_policy(tiny_policy_dict(), data, "a")
    train_bc(second, data, cfg, TrainRun(tmp_path / "split", 0, 3, 1, seed=3), resume=ckpt)
    for (name, a), b in zip(straight.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


class _Stop(Exception):
    """Stands for the process being killed."""


def _stop_at(step: int):
    def progress(s: int, scalars: dict) -> None:
        if s == step:
            raise _Stop

    return progress


def test_evaluation_schedule_best_checkpoint_and_summary(data_dirs, tmp_path):
    data = BCData(data_dirs[:1], 2, 8)
    policy = build_policy(tiny_policy_dict("flow"), data, "a")
    rates = iter([0.2, 0.6, 0.4])
    seen = []

    def evaluate(p):
        seen.append(int(p.ema_step))
        wins = round(10 * next(rates))
        stats = RolloutStats([True] * wins + [False] * (10 - wins), [0.0] * 10, [5] * 10)
        return {"a": EvalResult(stats)}

    cfg = BCConfig(steps=6, batch_size=4, warmup_steps=0)
    summary = train_bc(policy, data, cfg, TrainRun(tmp_path, 2, 100, 1, seed=0), evaluate=evaluate)
    assert seen == [2, 4, 6]  # every eval_every steps and at the end
    assert summary["best_success"] == pytest.approx(0.6)
    assert [h["step"] for h in summary["eval_history"]] == [2, 4, 6]
    best = json.loads((tmp_path / "checkpoints/best/trainer.json").read_text())
    assert best["step"] == 4
    assert len(summary["loss_curve"]) == 6
    assert all(math.isfinite(v) for _, v in summary["loss_curve"])
    assert (tmp_path / "tb").is_dir()
    loaded = load(tmp_path / "checkpoints/last", expect={"task": "a"})
    assert loaded.name == "flow"


def test_resume_from_a_checkpoint_of_another_shape_is_refused(data_dirs, tmp_path):
    data = BCData(data_dirs[:1], 2, 8)
    policy = build_policy(tiny_policy_dict(), data, "a")
    cfg = BCConfig(steps=2, batch_size=4, warmup_steps=0)
    train_bc(policy, data, cfg, TrainRun(tmp_path / "r", 0, 2, 1))
    other = build_policy({**tiny_policy_dict(), "horizon": 16}, BCData(data_dirs[:1], 2, 16), "a")
    last = tmp_path / "r/checkpoints/last"
    with pytest.raises(CheckpointError, match="horizon"):
        train_bc(other, data, cfg, TrainRun(tmp_path / "o", 0, 2, 1), resume=last)
    (last / "optimizer.safetensors").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="trainer state"):
        train_bc(policy, data, cfg, TrainRun(tmp_path / "p", 0, 2, 1), resume=last)


def test_resume_refuses_other_settings_and_other_data(data_dirs, tmp_path):
    data = BCData(data_dirs[:1], 2, 8)
    cfg = BCConfig(steps=2, batch_size=4, warmup_steps=0)
    policy = build_policy(tiny_policy_dict(), data, "a")
    train_bc(policy, data, cfg, TrainRun(tmp_path / "r", 0, 2, 1))
    last = tmp_path / "r/checkpoints/last"
    wider = build_policy({**tiny_policy_dict(), "state_hidden": 64}, data, "a")
    with pytest.raises(CheckpointError, match=r"\['state_hidden'\] differ"):
        train_bc(wider, data, cfg, TrainRun(tmp_path / "o", 0, 2, 1), resume=last)
    both = BCData(data_dirs, 2, 8)
    same = build_policy(tiny_policy_dict(), both, "a", language=False)
    with pytest.raises(CheckpointError, match="windows"):
        train_bc(same, both, cfg, TrainRun(tmp_path / "o", 0, 2, 1), resume=last)


def test_save_every_zero_saves_only_at_the_end(data_dirs, tmp_path):
    data = BCData(data_dirs[:1], 2, 8)
    policy = build_policy(tiny_policy_dict(), data, "a")
    train_bc(policy, data, BCConfig(steps=3, batch_size=4), TrainRun(tmp_path, 0, 0, 1))
    assert json.loads((tmp_path / "checkpoints/last/trainer.json").read_text())["step"] == 3


def test_non_finite_loss_stops_before_touching_the_last_checkpoint(data_dirs, tmp_path):
    data = BCData(data_dirs[:1], 2, 8)
    policy = build_policy(tiny_policy_dict(), data, "a")
    compute_loss = policy.compute_loss
    calls = []

    def poisoned(batch):  # fault injection: the 4th batch blows up
        loss, info = compute_loss(batch)
        calls.append(1)
        return (loss * float("nan"), info) if len(calls) == 4 else (loss, info)

    policy.compute_loss = poisoned
    with pytest.raises(TrainingError, match="step 4: loss nan"):
        train_bc(policy, data, BCConfig(steps=6, batch_size=4), TrainRun(tmp_path, 0, 3, 1))
    last = tmp_path / "checkpoints/last"
    assert json.loads((last / "trainer.json").read_text())["step"] == 3
    assert all(torch.isfinite(v).all() for v in load(last).state_dict().values())


def test_a_crash_between_the_checkpoint_renames_loses_nothing(tmp_path):
    target = tmp_path / "last"
    write_checkpoint(target, lambda d: (d.mkdir(), (d / "f").write_text("1")))
    # The crash: the old checkpoint was set aside, the new one not yet renamed into place.
    target.rename(tmp_path / "last.old")
    assert recover_checkpoint(target) == tmp_path / "last.old"
    # The next write puts the old one back first, then replaces it whole.
    write_checkpoint(target, lambda d: (d.mkdir(), (d / "f").write_text("2")))
    assert (target / "f").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_state_patterns_keep_named_entries_in_data_stats_and_config(tmp_path):
    feats = {
        "observation.state": Feature("float32", (4,), ["joint.0", "joint.1", "cube.x", "tcp.x"]),
        "action": Feature("float32", (2,)),
    }
    state = np.arange(20, dtype=np.float32).reshape(5, 4)
    with DatasetWriter.create(tmp_path / "d", fps=10, features=feats) as w:
        w.add_episode({"observation.state": state, "action": np.zeros((5, 2))}, task="t")
    data = BCData([tmp_path / "d"], 1, 8, state=["joint.*", "tcp.x"])
    assert data.state_names == ["joint.0", "joint.1", "tcp.x"]
    batch = data.sample(torch.tensor([2]))
    assert batch["observation.state"][0, 0].tolist() == [8.0, 9.0, 11.0]
    assert data.stats["observation.state"]["max"].tolist() == [16.0, 17.0, 19.0]
    policy = build_policy(tiny_policy_dict(), data, "a")
    assert policy.config.state_dim == 3
    assert policy.config.state_names == ("joint.0", "joint.1", "tcp.x")
    with pytest.raises(DatasetError, match="'gripper.\\*' matches none"):
        BCData([tmp_path / "d"], 1, 8, state=["gripper.*"])
