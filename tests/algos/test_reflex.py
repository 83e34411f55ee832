"""The reflex critic: event metrics worked out by hand, the pessimistic twin target, a critic
that learns to foresee a deliberately unsafe arm, checkpoints and the run-time filter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robot_rl.algos.reflex import (
    ReflexConfig,
    Rollouts,
    collect,
    event_metrics,
    risks,
    save_reflex,
    train_critic,
)
from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import load_profile
from robot_rl.safety import SafetyConfig, SafetyState, build_chain
from robot_rl.safety.reflex import ReflexCritic, load_reflex, risk_features


def test_event_metrics_by_hand():
    # one env, 30 steps, no episode ends. Violations at 10-11 and 25 (two events: 25 is more
    # than gap=3 safe steps after 11). Alarms at 5, 6 (lead 5 and 4 before 10) and at 24
    # (lead 1 before 25: too late for min_lead=3), and a false one at 0.
    cost = np.zeros((30, 1), bool)
    cost[[10, 11, 25], 0] = True
    risk = np.zeros((30, 1))
    risk[[0, 5, 6, 24], 0] = 0.9
    last = np.zeros((30, 1), bool)
    m = event_metrics(risk, cost, last, 0.5, window=8, min_lead=3, gap=3)
    assert m["events"] == 2
    assert m["recall"] == 0.5  # the event at 10 is caught, the one at 25 is not (lead 1)
    # alarms 5, 6, 24 precede an event within 8 steps; alarm 0 does not (10 is 10 steps away)
    assert m["precision"] == 0.75
    assert m["lead_median"] == 5.0
    # an episode boundary at 7 cuts the window: alarms 5 and 6 belong to another episode
    last[7, 0] = True
    m = event_metrics(risk, cost, last, 0.5, window=8, min_lead=3, gap=3)
    assert m["recall"] == 0.0


def test_precision_credits_alarms_before_merged_violations():
    # violations at 10 and 15 are one event (gap 10); the alarm at 13 foresaw the second run
    cost = np.zeros((30, 1), bool)
    cost[[10, 15], 0] = True
    risk = np.zeros((30, 1))
    risk[[5, 13], 0] = 0.9
    m = event_metrics(risk, cost, np.zeros((30, 1), bool), 0.5, window=8, min_lead=3, gap=10)
    assert m["events"] == 1 and m["precision"] == 1.0


def test_td_target_through_a_chain_to_a_violation():
    # every env runs s0 -> s1 -> s2 -> (violation on leaving s2) -> s0 ... with distinct features;
    # gamma 0.5: Q(s2) = 1, Q(s1) = 0.5, Q(s0) = 0.25 (no bootstrap, or min for max, or a
    # misaligned next state would all give other values)
    period = np.array([0.0, 1.0, 2.0])
    t, n = 60, 4
    x = np.stack([np.tile(period, t // 3)] * n, axis=1)[..., None].astype(np.float32)
    cost = np.zeros((t, n), bool)
    cost[2::3] = True  # the step from s2 violates
    last = np.zeros((t, n), bool)
    data = Rollouts(x, cost, last, np.zeros((t, n), int))
    cfg = ReflexConfig(gamma=0.5, updates=1500, batch_size=64, hidden=(32, 32))
    critic, _ = train_critic(data, cfg, progress=False)
    r = risks(critic, data)
    np.testing.assert_allclose(r[:3, 0], [0.25, 0.5, 1.0], atol=0.08)


@pytest.mark.slow
def test_critic_foresees_the_unsafe_arm(tmp_path):
    cfg = SafetyConfig.load("arm")
    train = collect("arm_push", 24, 300, 0, cfg, progress=False)
    val = collect("arm_push", 24, 150, 1, cfg, progress=False)
    assert train.cost[:, train.behaviour[0] == 2].mean() > 0.05  # the divers do cross limits
    cfg_ = ReflexConfig(updates=1000, gamma=0.8, hidden=(256, 256))
    critic, _ = train_critic(train, cfg_, progress=False)
    r = risks(critic, val)
    # steps 3..20 before a violation look far riskier to it than steps nowhere near one
    t_len, n = val.cost.shape
    before = np.zeros_like(val.cost)
    far = ~val.cost.copy()
    for t in np.flatnonzero(val.cost.any(axis=1)):
        before[max(0, t - 20) : max(0, t - 2)] |= val.cost[t]
        far[max(0, t - 20) : t + 1] &= ~val.cost[t]
    assert before.sum() >= 20 and far.sum() >= 100
    assert r[before].mean() > 3 * r[far].mean(), (r[before].mean(), r[far].mean())
    save_reflex(
        tmp_path / "ck", critic, {"in_dim": critic.in_dim, "hidden": [256, 256], "threshold": 0.2}
    )
    loaded, meta = load_reflex(tmp_path / "ck")
    np.testing.assert_allclose(risks(loaded, val), r, atol=1e-6)
    # in a chain: the reflex fires on the commands the critic finds risky, holds them
    chain = build_chain(
        "arm", {**cfg.__dict__, "chain": ["reflex"], "reflex": {"checkpoint": str(tmp_path / "ck")}}
    )
    reflex = chain.filters[0]
    q = chain.space.default[None].repeat(2, 0)
    command = q.copy()
    command[0, 1] += 0.01  # a small, harmless move from the default pose
    command[1, 1] += 1.5  # swing the shoulder down through the table
    state = SafetyState(q=q, dq=np.zeros_like(q))
    risk = reflex.filter(state, command)[1].detail["risk"]
    assert risk[0] < risk[1], risk
    reflex.threshold = float(risk.mean())  # between the two: the reflex holds only the swing
    out, report = reflex.filter(state, command)
    np.testing.assert_array_equal(out[0], command[0])
    np.testing.assert_array_equal(out[1], q[1])
    assert report.fail_closed.tolist() == [False, True]


def test_reflex_filter_fails_closed_and_bad_checkpoints(tmp_path):
    profile, cfg = load_profile("arm"), SafetyConfig.load("arm")
    features = risk_features(profile, cfg)
    critic = ReflexCritic(features.dim, (16,))
    save_reflex(tmp_path / "ck", critic, {"in_dim": features.dim, "hidden": [16], "threshold": 0.5})
    chain = build_chain(
        "arm", {**cfg.__dict__, "chain": ["reflex"], "reflex": {"checkpoint": str(tmp_path / "ck")}}
    )
    reflex = chain.filters[0]
    q = chain.space.default[None].copy()
    last = q - 0.01  # (the gripper's default is its upper stop)
    # NaN velocities: the risk cannot be computed, so the reflex fires (holds the last command)
    out, report = reflex.filter(
        SafetyState(q=q, dq=np.full_like(q, np.nan), last_command=last), q + 0.02
    )
    assert report.fail_closed.all()
    np.testing.assert_array_equal(out, last)
    # a risky-looking command: force the critic's output high
    with torch.no_grad():
        for net in (critic.q1, critic.q2):
            net[-1].bias.fill_(10.0)
    save_reflex(
        tmp_path / "hot", critic, {"in_dim": features.dim, "hidden": [16], "threshold": 0.5}
    )
    hot = build_chain(
        "arm",
        {**cfg.__dict__, "chain": ["reflex"], "reflex": {"checkpoint": str(tmp_path / "hot")}},
    )
    out, report = hot.filters[0].filter(
        SafetyState(q=q, dq=np.zeros_like(q), last_command=last), q + 0.02
    )
    assert report.fail_closed.all() and "reflex" in report.reason
    # broken checkpoints get one-line errors
    (tmp_path / "hot" / "reflex.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="unreadable"):
        load_reflex(tmp_path / "hot")
    with pytest.raises(ConfigError, match="not a reflex checkpoint"):
        load_reflex(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="needs safety.reflex.checkpoint"):
        build_chain("arm", {**cfg.__dict__, "chain": ["reflex"], "reflex": {}})


def test_train_and_eval_reflex_commands(tmp_path, capsys):
    from robot_rl.cli.main import main

    out = tmp_path / "rfx"
    args = ["train", "reflex", f"out={out}", "num_envs=6", "steps=40", "algo.updates=20"]
    assert main(args) == 0
    meta = json.loads((out / "checkpoint" / "config.json").read_text())
    assert 0 < meta["threshold"] < 1 and "recall" in meta["validation"]
    args = ["eval", "reflex", f"checkpoint={out / 'checkpoint'}", "num_envs=6", "steps=30"]
    assert main(args) == 0
    report = json.loads((out / "eval" / "reflex_eval.json").read_text())
    assert {"recall", "precision", "lead_median", "sweep"} <= set(report)
    assert (out / "eval" / "reflex_eval.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["train", "reflex", "algo.gamma=1.5"]) == 2  # one-line config error
    assert "algo.gamma must be in (0, 1)" in capsys.readouterr().err
