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
