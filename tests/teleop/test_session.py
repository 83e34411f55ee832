"""The session loop in-process, with a scripted device (``robot-rl teleop``'s driving mode)."""

from __future__ import annotations

import io

import robot_rl.envs as E
from robot_rl.envs import load_task_config
from robot_rl.teleop.command import Event, TeleopCommand
from robot_rl.teleop.mapping import ArmMapping
from robot_rl.teleop.session import Session


class Scripted:
    """Poll k returns ``script.get(k)`` events and a +x twist."""

    name = "scripted"

    def __init__(self, script: dict[int, list[Event]]) -> None:
        self.script, self.polls = script, 0

    def poll(self) -> TeleopCommand:
        cmd = TeleopCommand(twist=[1, 0, 0, 0, 0, 0], events=self.script.get(self.polls, []))
        self.polls += 1
        return cmd

    def close(self) -> None:
        pass


def test_driving_restarts_after_time_limits_and_operator_finishes():
    task = load_task_config("arm_push", {"name": "arm_push", "episode_length": 5})
    env = E.make(task, 1, seed=0)
    out = io.StringIO()
    # Polls 0–4 step episode 1 to its limit; poll 7 finishes episode 2 (2 steps) as a success;
    # poll 12 quits during episode 3 after 4 steps.
    dev = Scripted({7: [Event.SUCCESS], 12: [Event.QUIT]})
    s = Session(env, dev, ArmMapping(), instruction="x", speed=0, wait_for_start=False, out=out)
    res = s.run()
    env.close()
    assert (res.saved, res.successes, res.discarded, res.quit) == (2, 1, 1, True)
    text = out.getvalue()
    assert "finished episode 1 (time limit/env): failure after 5 steps" in text
    assert "finished episode 2 (operator): success after 2 steps" in text
    assert "quit: dropped episode 3 after 4 steps" in text
    assert "[drive] episode" in text
