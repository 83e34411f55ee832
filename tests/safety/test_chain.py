"""The arm chain built from hardware/arm.yaml + configs/safety/arm.yaml: watchdog on a simulated
clock, fail-closed behaviour, intervention counts, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.core.errors import ConfigError
from robot_rl.safety import SafetyConfig, SafetyState, build_chain


def tick(chain, q, now, command, command_stamp):
    state = SafetyState(q=q, dq=np.zeros_like(q), now=now, stamp=now, command_stamp=command_stamp)
    return chain.step(state, command)


def test_watchdog_holds_within_one_tick_of_the_timeout():
    chain = build_chain("arm", "arm")
    q = chain.space.default[None].copy()
    dt = chain.space.dt  # 0.05 s
    timeout = chain.filters[1].timeout  # configs/safety/arm.yaml: 0.085 s
    assert chain.filters[1].name == "watchdog"
    target = q + 0.02
    last_stamp, outputs = 0.0, []
    for k in range(12):
        now = k * dt
        if k < 4:  # the policy publishes for 4 ticks, then goes silent
            last_stamp = now
        out, reports = tick(chain, q, now, target, last_stamp)
        outputs.append((now, out, {r.component: r for r in reports}))
        q = out
    for now, _, reports in outputs:
        expired = now - 3 * dt > timeout + 1e-9
        assert bool(reports["watchdog"].fail_closed[0]) == expired, now
    # the first tick past the timeout already holds the last command
    first = next(i for i, (now, _, r) in enumerate(outputs) if r["watchdog"].fail_closed[0])
    np.testing.assert_array_equal(outputs[first][1], outputs[first - 1][1])
    # the last command came at 0.15 s: ticks at 0.2 (age 0.05) pass, 0.25 (age 0.1) holds
    assert outputs[first][0] == pytest.approx(0.15 + dt * np.ceil(timeout / dt + 1e-9))


def test_chain_fails_closed_when_a_component_raises():
    chain = build_chain("arm", "arm")
    q = chain.space.default[None].copy()

    class Broken:
        name = "broken"

        def filter(self, state, action):
            raise RuntimeError("solver crashed")

    chain.filters.insert(2, Broken())
    out, reports = chain.filter(SafetyState(q=q, dq=np.zeros_like(q), now=0, stamp=0), q + 0.05)
    np.testing.assert_array_equal(out, q)  # hold
    assert reports[-1].fail_closed.all() and "solver crashed" in reports[-1].reason


def test_intervention_statistics_per_component():
    chain = build_chain("arm", "arm")
    q = chain.space.default[None].copy()
    for k in range(10):
        command = q + (1.0 if k % 2 else 0.0)  # every other command jumps a full radian
        q, _ = tick(chain, q, 0.05 * k, command, 0.05 * k)  # the others hold still
    scalars = chain.stats.scalars()
    assert scalars["safety/rate_limiter/rate"] == pytest.approx(0.5)
    assert scalars["safety/watchdog/rate"] == 0.0
    assert scalars["safety/rate_limiter/mean_correction"] > 0.5


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"chain": ["joint_limits", "wormhole"]}, "unknown components ['wormhole']"),
        ({"chian": []}, "unknown keys ['chian']"),
        ({"watchdog_timeout_s": 0}, "watchdog_timeout_s must be > 0"),
        ({"deflection_gain": -1.0}, "deflection_gain must be >= 0"),
        ({"safe_action": "pray", "chain": []}, "safe action must be one of"),
    ],
)
def test_bad_safety_configs_get_one_line_errors(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_chain("arm", SafetyConfig.load(raw) if "safe_action" not in raw else raw)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SafetyConfig.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("chain: [joint_limits\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SafetyConfig.load(bad)
