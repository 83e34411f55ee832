"""Every shipped config file parses; every task config builds its typed config."""

import yaml

import robot_rl.envs as E
from robot_rl.core import asset_root


def test_all_yaml_configs_parse():
    files = sorted((asset_root() / "configs").rglob("*.yaml"))
    assert len(files) >= 8
    for f in files:
        assert isinstance(yaml.safe_load(f.read_text()), dict), f


def test_every_task_config_validates():
    for name in E.task_names():
        cfg = E.load_task_config(name)
        assert cfg.name == name and cfg.instruction
        assert set(cfg.reward_weights) >= {"success"}


def test_policy_and_bc_configs_build_their_typed_configs():
    from robot_rl.algos.bc import BCConfig
    from robot_rl.envs.config import build_config
    from robot_rl.policies import POLICIES

    for f in sorted((asset_root() / "configs" / "policy").glob("*.yaml")):
        data = yaml.safe_load(f.read_text())
        cls = POLICIES.get(data["name"]).config_class
        cfg = cls.from_dict({**data, "state_dim": 40, "action_dim": 7})
        assert 1 <= cfg.action_steps <= cfg.horizon, f
    bc = yaml.safe_load((asset_root() / "configs" / "algo" / "bc.yaml").read_text())
    assert build_config(BCConfig, bc, where="algo").steps >= 1
