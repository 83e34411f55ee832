"""The robot-rl command: composition, validation and one-line errors."""

import json
import subprocess
import sys

import pytest

from robot_rl.cli.main import main


def _last_json(out: str) -> dict:
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


def test_tasks_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("arm_reach", "arm_push", "arm_pick_place"):
        assert name in out


def test_evaluate_expert_reports_success_with_interval(capsys):
    assert main(["evaluate", "task=arm_reach", "episodes=40", "num_envs=20"]) == 0
    summary = _last_json(capsys.readouterr().out)["summary"]
    assert summary["episodes"] == 40
    assert summary["success_rate"] >= 0.95
    assert summary["success_ci95_low"] < summary["success_rate"] <= summary["success_ci95_high"]


def test_evaluate_random_controller_rarely_succeeds(capsys):
    assert (
        main(
            [
                "evaluate",
                "task=arm_pick_place",
                "controller=random",
                "episodes=20",
                "num_envs=20",
                "task.episode_length=30",
            ]
        )
        == 0
    )
    assert _last_json(capsys.readouterr().out)["summary"]["success_rate"] <= 0.1


@pytest.mark.parametrize(
    "args, needle",
    [
        (["evaluate", "epsiodes=3"], "Could not override 'epsiodes'"),
        (["evaluate", "task=arm_pusj"], "arm_push"),
        (["evaluate", "task.episode_length=abc"], "episode_length"),
        (["evaluate", "task.randomization.friction=[2,1]"], "randomization.friction"),
        (["evaluate", "task.action_mode=cartesian"], "action_mode"),
        (["evaluate", "controller=human"], "controller"),
        (["evaluate", "+foo=1"], "foo"),
        (["evaluate", "task=null"], "takes one name"),
        (["evaluate", "task=[arm_push,arm_reach]"], "takes one name"),
        (["evaluate", "episodes=[1"], "cannot parse"),
        (["evaluate", "positional"], "key=value"),
        (["collect", "task=arm_push"], "out=DIR"),
        (["dataset", "check", "x"], "info|validate"),
    ],
)
def test_bad_input_gives_one_line_error(capsys, args, needle):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err
    assert len(err.splitlines()) == 1, err


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "collect" in out and "dataset" in out
