"""End to end, no ROS: ``robot-rl launch launch/arm_sim.launch.xml`` starts the simulator bridge,
the policy node and the safety node as separate processes talking DDS; this test joins the same
DDS domain like any ROS 2 tool would and checks that a trained policy completes ``arm_reach``
episodes through the graph, that a killed policy is held within two control periods and
reported on ``/diagnostics``, that a NaN joint reading faults to the safe action, and that the
e-stop latches."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.deploy.qos import COMMAND, LATCHED, STATE, to_dds
from robot_rl.msgs import (
    Bool,
    DiagnosticArray,
    Float64MultiArray,
    JointState,
    String,
    to_time,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "tests/assets/policies/arm_reach_flow_small"
PERIOD = 0.05  # the arm's control period (hardware/arm.yaml: 20 Hz)


class Tap:
    """Subscribes to a topic on the test's own participant; keeps (receipt time, message)."""

    def __init__(self, dp, name: str, msg_type, qos) -> None:
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self.reader = DataReader(dp, Topic(dp, "rt" + name, msg_type), to_dds(qos))
        self.items: list[tuple[float, object]] = []

    def poll(self) -> list[tuple[float, object]]:
        now = time.monotonic()
        for s in self.reader.take(N=256):
            if getattr(s.sample_info, "valid_data", True):
                self.items.append((now, s))
        return self.items


def assert_holds(commands: Tap, episodes: Tap, since: float, held=None) -> None:
    """Every command received after ``since`` is the same within each simulated episode, and
    until the next episode event equal to ``held`` when given. The held arm's episode may end
    meanwhile (the simulator keeps stepping on held commands); the node then holds where the
    reset put the arm, so each episode is checked on its own, leaving out a control period of
    delivery slack after each episode event."""
    after = [(t, np.asarray(m.data)) for t, m in commands.items if t > since]
    assert after, f"no command after {since:.3f}"
    events = [since, *(t for t, _ in episodes.items if t > since), float("inf")]
    for start, end in zip(events[:-1], events[1:], strict=True):
        slack = PERIOD if start > since else 0.0
        segment = [c for t, c in after if start + slack < t < end]
        if not segment:
            continue
        reference = held if start == since and held is not None else segment[0]
        for cmd in segment:
            np.testing.assert_allclose(cmd, reference, atol=1e-9)


def writer(dp, name: str, msg_type, qos):
    from cyclonedds.pub import DataWriter
    from cyclonedds.topic import Topic

    return DataWriter(dp, Topic(dp, "rt" + name, msg_type), to_dds(qos))


def wait(predicate, timeout: float, taps=()) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for t in taps:
            t.poll()
        if predicate():
            return True
        time.sleep(0.002)
    return False


@contextlib.contextmanager
def launched(launch_file: str, args: list[str], domain_salt: int = 0):
    """``robot-rl launch <launch_file> <args>`` on a private DDS domain, with this test's own
    participant in it; yields (process, participant, output lines). Ctrl-C stops the graph at
    the end (killed if it does not stop within 15 s)."""
    domain = 100 + (os.getpid() + domain_salt) % 100
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli.main", "launch", launch_file, *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    from cyclonedds.domain import DomainParticipant

    dp = DomainParticipant(domain)
    try:
        yield proc, dp, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def graph():
    """The launched arm graph; yields (process, participant, output lines)."""
    with launched("launch/arm_sim.launch.xml", [f"checkpoint:={CHECKPOINT}", "seed:=1"]) as g:
        yield g


def _pid(lines: list[str], node: str) -> int:
    for line in lines:
        m = re.search(rf"started {node} \(pid (\d+)\)", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no pid for {node} in {lines[:5]}")


def test_arm_sim_graph_end_to_end(graph):
    proc, dp, lines = graph
    episodes = Tap(dp, "/sim/episode", String, STATE)
    diagnostics = Tap(dp, "/diagnostics", DiagnosticArray, STATE)
    commands = Tap(dp, "/arm_controller/commands", Float64MultiArray, COMMAND)
    actions = Tap(dp, "/policy_node/action_raw", Float64MultiArray, COMMAND)
    mode = Tap(dp, "/safety_node/mode", String, LATCHED)
    taps = (episodes, diagnostics, commands, actions, mode)

    def ended():
        return [json.loads(m.data) for _, m in episodes.items if '"end"' in m.data]

    # 1. a trained policy completes episodes through the graph
    ok = wait(lambda: sum(e["success"] for e in ended()) >= 2, 150, taps)
    assert ok, f"episodes {ended()}; output:\n" + "".join(lines[-30:])
    assert proc.poll() is None

    # 2. a NaN in /joint_states faults to the safe action. The injected reading is stamped in
    # the past, so the policy ignores it; an action follows it at once, as from the policy.
    joints_out = writer(dp, "/joint_states", JointState, STATE)
    action_out = writer(dp, "/policy_node/action_raw", Float64MultiArray, COMMAND)
    names = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_roll", "wrist_pitch"]
    names += ["flange_roll", "finger_left", "finger_right"]
    bad = JointState(name=names, position=[float("nan")] * 8, velocity=[0.0] * 8)
    bad.header.stamp = to_time(1.0)

    def guard_count() -> int:
        for _, d in reversed(diagnostics.items):
            for kv in d.status[0].values:
                if kv.key.startswith("observation_guard") and "finite" in kv.key:
                    return int(kv.value)
        return 0

    # new writers: the safety node must have discovered them, or the first samples go nowhere
    # (discovery takes longer than a control period on a loaded machine)
    for w in (joints_out, action_out):
        assert wait(lambda w=w: len(w.get_matched_subscriptions()), 5, taps), "writer unmatched"
    before = guard_count()

    def inject_until_reported() -> bool:
        # the simulator's next good reading replaces the bad one within a period, so the bad one
        # and an action may miss the node's step: inject again each period until it is reported
        for _ in range(20):
            joints_out.write(bad)
            action_out.write(Float64MultiArray(data=[1.0, 0, 0, 0, 0, 0, -1.0]))
            if wait(lambda: guard_count() > before, 2 * PERIOD, taps):
                return True
        return wait(lambda: guard_count() > before, 2, taps)

    assert inject_until_reported(), "no observation-guard fault reported"

    # 3. killing the policy process: the safety node holds within two control periods
    wait(lambda: False, 0.5, taps)
    os.kill(_pid(lines, "policy_node"), signal.SIGKILL)
    wait(lambda: False, 1.0, taps)
    last_action = max(t for t, _ in actions.items)
    after = [(t, np.asarray(m.data)) for t, m in commands.items if t > last_action]
    assert after, "no command after the policy died"
    held_at, _ = after[0]
    # the watchdog's first command came within 2 periods (+ delivery slack on a loaded machine)
    assert held_at - last_action <= 2 * PERIOD + 0.02, held_at - last_action
    assert_holds(commands, episodes, last_action)  # and it holds
    reported = [
        d for t, d in diagnostics.items if t > last_action and "watchdog" in d.status[0].message
    ]
    assert reported and reported[0].status[0].level == 2  # ERROR

    # 4. the e-stop latches: releasing it does not resume, only ~/reset clears it
    # (a plain volatile publisher, as most e-stop and joystick nodes have)
    estop = writer(dp, "/estop", Bool, STATE)
    assert wait(lambda: True, 2, taps) and wait(lambda: len(estop.get_matched_subscriptions()), 5)
    t_estop = time.monotonic()
    estop.write(Bool(data=True))
    assert wait(lambda: any(m.data == "estop" for _, m in mode.items), 3, taps)
    estop.write(Bool(data=False))
    wait(lambda: False, 0.5, taps)
    assert mode.items[-1][1].data == "estop"
    assert "e-stop" in diagnostics.items[-1][1].status[0].message
    # still holding what it held before the e-stop, not moving
    held = [np.asarray(m.data) for t, m in commands.items if t <= t_estop][-1]
    assert_holds(commands, episodes, t_estop, held)

    # 5. Ctrl-C stops every node cleanly
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) in (0, 1)  # 1: the policy node had died (killed above)
    assert any("stopping" in line for line in lines)
