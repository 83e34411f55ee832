"""Checkpoints: JSON + safetensors round trip, and every way a bad directory is refused."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import robot_rl.policies as P
from robot_rl.core.errors import ConfigError
from robot_rl.policies import CheckpointError, DiffusionPolicy, FlowPolicy
from robot_rl.policies.ppo_actor import PPOActor, load_ppo_actor

from .conftest import random_batch, stats_for, tiny_config

INSTRUCTIONS = ("push the red block", "reach the goal")


def trained(cls, **overrides):
    """A policy with a camera and language, two optimizer steps in (so EMA != raw weights)."""
    config = tiny_config(
        cls.config_class.name, cameras=("front",), instructions=INSTRUCTIONS, **overrides
    )
    policy = cls(config, {"observation.state": stats_for(3), "action": stats_for(2, -1.0, 0.5)})
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-2)
    for seed in range(3):
        loss, _ = policy.compute_loss(random_batch(config, seed=seed))
        opt.zero_grad()
        loss.backward()
        opt.step()
        policy.update_ema()
    return policy


def observation(config, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = config.image_size
    return {
        "state": torch.randn(2, config.obs_horizon, config.state_dim, generator=g),
        "image": torch.randint(
            0, 256, (2, config.obs_horizon, 3, h, w), generator=g, dtype=torch.uint8
        ),
        "instruction": list(INSTRUCTIONS),
    }


@pytest.mark.parametrize(("cls", "head"), [(DiffusionPolicy, "unet"), (FlowPolicy, "transformer")])
def test_save_load_gives_bit_identical_actions(tmp_path, cls, head):
    policy = trained(cls, head=head)
    P.save(policy, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "model.safetensors",
        "train_state.safetensors",
    ]
    loaded = P.load(
        tmp_path / "ckpt", expect={"state_dim": 3, "policy_type": cls.config_class.name}
    )
    assert type(loaded) is cls and loaded.config == policy.config
    assert loaded.config.text.vocab == policy.config.text.vocab
    obs = observation(policy.config)
    a = policy.act(obs, generator=torch.Generator().manual_seed(7))
    b = loaded.act(obs, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    # EMA weights are the evaluation weights; raw weights come back for resuming training
    for name, param in policy.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[name], param), name
    ema_differs = any(
        not torch.equal(e, r) for e, r in zip(policy.ema_net.parameters(), policy.net.parameters())
    )
    assert ema_differs and int(loaded.ema_step) == 3
    assert not torch.equal(
        a, policy.act(obs, generator=torch.Generator().manual_seed(7), use_ema=False)
    )


def test_config_json_is_readable_and_complete(tmp_path):
    policy = trained(DiffusionPolicy, task="arm_push")
    P.save(policy, tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["policy_type"] == "diffusion"
    cfg = meta["config"]
    assert (cfg["state_dim"], cfg["action_dim"], cfg["task"]) == (3, 2, "arm_push")
    assert cfg["instructions"] == list(INSTRUCTIONS)
    assert cfg["text"]["vocab"][:3] == ["<pad>", "<unk>", "<bos>"] and "red" in cfg["text"]["vocab"]


def test_pickle_posing_as_safetensors_is_refused_without_unpickling(tmp_path, monkeypatch):
    P.save(trained(DiffusionPolicy), tmp_path)
    model = tmp_path / "model.safetensors"

    def boom(*args, **kwargs):
        raise AssertionError("load() must never unpickle")

    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    for writer in (
        lambda: torch.save({"w": torch.zeros(2)}, model),
        lambda: model.write_bytes(pickle.dumps({})),
    ):
        writer()
        with pytest.raises(CheckpointError, match="model.safetensors is a pickle") as info:
            P.load(tmp_path)
        assert "\n" not in str(info.value)
    model.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="model.safetensors is not a valid safetensors"):
        P.load(tmp_path)


def test_shape_and_task_mismatch_is_refused(tmp_path):
    P.save(trained(DiffusionPolicy, task="arm_reach"), tmp_path)
    with pytest.raises(CheckpointError, match=r"state_dim=3 \(expected 40\)") as info:
        P.load(tmp_path, expect={"state_dim": 40, "action_dim": 7, "task": "arm_push"})
    message = str(info.value)
    assert (
        "action_dim=2 (expected 7)" in message
        and "task='arm_reach' (expected 'arm_push')" in message
    )
    with pytest.raises(ConfigError, match="unknown fields"):
        P.load(tmp_path, expect={"state_size": 3})
    # weights that do not fit the config they came with
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["state_dim"] = 5
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"tensor '.*' has shape .* config implies"):
        P.load(tmp_path)


def test_missing_or_corrupt_files_give_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        P.load(tmp_path / "nowhere")
    P.save(trained(FlowPolicy), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model.safetensors is missing") as info:
        P.load(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        P.load(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        P.load(tmp_path)


def test_bad_config_values_in_checkpoint_are_reported_with_the_file(tmp_path):
    P.save(trained(FlowPolicy), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["integration_steps"] = 0
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError, match=r"config.json: integration_steps must be >= 1, got 0"
    ):
        P.load(tmp_path)
    meta["policy_type"] = "difusion"
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="did you mean 'diffusion'"):
        P.load(tmp_path)


def test_a_ppo_checkpoint_loads_as_its_actor(tmp_path):
    asset = Path(__file__).parents[1] / "assets/policies/humanoid_balance_ppo_small"
    policy = P.load(asset, expect={"policy_type": "ppo", "task": "humanoid_balance"})
    assert isinstance(policy, PPOActor) and (policy.name, policy.config.head) == ("ppo", "mlp")
    state = torch.randn(3, policy.config.state_dim, generator=torch.Generator().manual_seed(0))
    # the batched runner's key and the node's give the same (B, 1, A) chunk as the direct loader
    chunk = policy.act({"observation.state": state[:, None]})
    assert chunk.shape == (3, 1, 12)
    torch.testing.assert_close(chunk, load_ppo_actor(asset).act({"state": state}), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"state_dim=45 \(expected 40\)"):
        P.load(asset, expect={"state_dim": 40})
    broken = shutil.copytree(asset, tmp_path / "broken")
    (broken / "ppo.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable") as info:
        P.load(broken)
    assert len(str(info.value).splitlines()) == 1
