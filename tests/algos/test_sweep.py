"""The randomization sweep's settings (pure config, no simulation) and its table."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from robot_rl.algos.evaluate import EvalResult
from robot_rl.algos.report import sweep_table
from robot_rl.algos.rollout import RolloutStats
from robot_rl.algos.sweep import randomization_settings, term_values
from robot_rl.envs import load_task_config
from robot_rl.envs.config import RandomizationConfig
from robot_rl.envs.tasks.humanoid.config import HumanoidPerturbation


def _differences(a, b, prefix=""):
    """Dotted paths of the leaves where two ``asdict`` trees differ (lists and tuples alike)."""
    if isinstance(a, dict):
        return [p for k in a for p in _differences(a[k], b[k], f"{prefix}{k}.")]
    same = (list(a) == list(b)) if isinstance(a, list | tuple) else a == b
    return [] if same else [prefix.rstrip(".")]


def test_humanoid_balance_settings_are_nominal_each_term_alone_and_all():
    task = load_task_config("humanoid_balance")
    before = dataclasses.asdict(task)
    settings = randomization_settings(task)
    # configs/task/humanoid_balance.yaml: object_pose_scale and push_interval_s are not terms
    # (the first is at its neutral 1.0, the second only schedules pushes)
    assert list(settings) == [
        "nominal",
        "friction",
        "mass",
        "joint_damping",
        "actuator_gain",
        "obs_noise_std",
        "action_delay",
        "joint_friction",
        "armature",
        "base_mass_offset",
        "default_pose_offset",
        "push_velocity",
        "all",
    ]
    nominal = settings["nominal"]
    assert nominal.randomization == RandomizationConfig()
    assert nominal.perturbation == HumanoidPerturbation(push_interval_s=[5.0, 5.0])
    base = dataclasses.asdict(nominal)
    assert _differences(base, dataclasses.asdict(settings["friction"])) == [
        "randomization.friction"
    ]
    assert settings["friction"].randomization.friction == [0.3, 1.25]
    assert _differences(base, dataclasses.asdict(settings["push_velocity"])) == [
        "perturbation.push_velocity"
    ]
    # everything but the terms as configured (a 1000-step episode, the task's rewards)
    blocks = ["randomization"] * 6 + ["perturbation"] * 5
    terms = list(settings)[1:-1]
    assert _differences(base, dataclasses.asdict(task)) == [
        f"{b}.{t}" for b, t in zip(blocks, terms, strict=True)
    ]
    assert settings["all"] == task
    assert dataclasses.asdict(task) == before  # the handed config is left alone
    assert term_values(task)["base_mass_offset"] == (-1.0, 3.0)


def test_a_task_without_perturbation_or_randomization_has_nominal_and_all_only():
    task = load_task_config("arm_reach")
    neutral = dataclasses.replace(task, randomization=RandomizationConfig())
    settings = randomization_settings(neutral)
    assert list(settings) == ["nominal", "all"]
    assert settings["nominal"] == settings["all"] == neutral
    noisy = dataclasses.replace(task, randomization=RandomizationConfig(obs_noise_std=0.02))
    assert list(randomization_settings(noisy)) == ["nominal", "obs_noise_std", "all"]


def _result(successes, returns, **metrics):
    lengths = [10] * len(returns)
    return EvalResult(RolloutStats(successes, returns, lengths, metrics))


def test_sweep_table_has_a_row_per_setting_and_the_metrics_the_task_reports():
    results = {
        "nominal": _result([True, True], [4.0, 6.0], survival_time=[2.0, 2.0]),
        "all": _result([True, False], [1.0, 2.0], survival_time=[2.0, 1.0]),
    }
    table = sweep_table(results, title="t")
    headers = [c.header for c in table.columns]
    assert headers == ["setting", "success", "95% CI", "mean survival time (s)", "mean return"]
    console = Console(width=120, record=True)
    console.print(table)
    rows = {
        cells[1].strip(): [c.strip() for c in cells[2:-1]]
        for cells in (line.split("│") for line in console.export_text().splitlines())
        if len(cells) > 2
    }
    # Wilson 95% intervals: 2 of 2 ⇒ [34.2%, 100%], 1 of 2 ⇒ [9.5%, 90.5%]
    assert rows["nominal"] == ["100.0%", "34.2%–100.0%", "2", "5.00"]
    assert rows["all"] == ["50.0%", "9.5%–90.5%", "1.5", "1.50"]
    walk = {"all": _result([True], [1.0], survival_time=[2.0], tracking_error=[0.25])}
    assert "mean tracking error (m/s)" in [c.header for c in sweep_table(walk).columns]
