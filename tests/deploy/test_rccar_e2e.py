"""End to end, no ROS: ``robot-rl launch launch/rccar_sim.launch.xml`` starts the car's simulator
bridge, the policy node and the safety node as separate processes talking DDS; this test joins
the domain like any ROS 2 tool and checks that a trained policy drives laps of the oval through
the graph, and that killing the policy process brakes the car (``/drive`` speed ≤ 0) within two
control periods of its last action."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from robot_rl.deploy.qos import COMMAND, STATE
from robot_rl.msgs import AckermannDriveStamped, DiagnosticArray, Float64MultiArray, String
from tests.deploy.test_e2e import Tap, _pid, launched, wait

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "tests/assets/policies/rccar_race_flow_small"
PERIOD = 0.05  # the car's control period (hardware/rccar.yaml: 20 Hz)
LAPS, BUDGET_S = 2, 150.0


@pytest.fixture
def car_graph():
    """The launched car graph on a private DDS domain; yields (process, participant, lines)."""
    if not (CHECKPOINT / "config.json").is_file():
        pytest.skip(f"no trained car policy at {CHECKPOINT.relative_to(ROOT)}")
    args = [f"checkpoint:={CHECKPOINT}", "track:=oval", "seed:=1"]
    with launched("launch/rccar_sim.launch.xml", args, domain_salt=37) as g:
        yield g


def test_rccar_sim_graph_drives_laps_and_brakes_when_the_policy_dies(car_graph):
    proc, dp, lines = car_graph
    episodes = Tap(dp, "/sim/episode", String, STATE)
    drives = Tap(dp, "/drive", AckermannDriveStamped, COMMAND)
    actions = Tap(dp, "/policy_node/action_raw", Float64MultiArray, COMMAND)
    diagnostics = Tap(dp, "/diagnostics", DiagnosticArray, STATE)
    taps = (episodes, drives, actions, diagnostics)

    def ended():
        return [json.loads(m.data) for _, m in episodes.items if '"end"' in m.data]

    # 1. the policy drives laps through the graph (an episode succeeds after one lap)
    ok = wait(lambda: sum(e["success"] for e in ended()) >= LAPS, BUDGET_S, taps)
    assert ok, f"episodes {ended()}; output:\n" + "".join(lines[-30:])
    assert all(e["track"] == "oval" for e in ended())
    assert any(m.drive.speed > 1.0 for _, m in drives.items)  # it raced, not crawled
    assert proc.poll() is None

    # 2. kill the policy mid-lap: the safety node brakes within two control periods
    wait(lambda: False, 1.0, taps)
    os.kill(_pid(lines, "policy_node"), signal.SIGKILL)
    wait(lambda: False, 1.0, taps)
    last_action = max(t for t, _ in actions.items)
    after = [(t, m.drive.speed) for t, m in drives.items if t > last_action]
    assert after, "no drive command after the policy died"
    braked = [t for t, speed in after if speed <= 0.0]
    assert braked, f"never braked: speeds {[s for _, s in after][:10]}"
    # + delivery slack on a loaded machine, as the arm's end-to-end test allows
    assert braked[0] - last_action <= 2 * PERIOD + 0.02, braked[0] - last_action
    assert all(speed <= 0.0 for t, speed in after if t >= braked[0])  # and it stays braked
    reported = [
        d for t, d in diagnostics.items if t > last_action and "watchdog" in d.status[0].message
    ]
    assert reported and reported[0].status[0].level == 2  # ERROR

    # 3. Ctrl-C stops every node cleanly
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) in (0, 1)  # 1: the policy node had died (killed above)
