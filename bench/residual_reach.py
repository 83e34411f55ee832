"""Residual RL on a deliberately biased arm_reach base, over seeds (the fast case of the tests).

    python bench/residual_reach.py --seeds 1 2 3 --env-steps 12000

The base is the scripted reach expert with ``--bias`` added to its x command (37% success at the
default 0.6). Each seed trains the residual learner (bound 0.2, 128 x 128 networks, 5 critic
heads, one update per transition, sparse success reward) in 16 envs and evaluates base+residual
every ``--eval-every`` env steps on the same 100 episodes. Prints one row per seed, the base as
the anchor, and the wall time (one torch thread per run).
``tests/algos/test_residual_learns.py`` runs one seed of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from robot_rl.algos.residual import ResidualConfig, ResidualLearner, collect_and_learn
from robot_rl.algos.residual_job import ResidualController
from robot_rl.algos.rollout import rollout
from robot_rl.envs import make
from robot_rl.envs.experts.base import make_expert

CONFIG = ResidualConfig(
    env_steps=12_000,
    action_scale=0.2,
    hidden=(128, 128),
    critic_heads=5,
    utd=1.0,
    warmup_env_steps=2_000,
    critic_warmup_updates=200,
)


def bias_vector(x: float) -> tuple[float, ...]:
    return (x, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def success_rate(learner: ResidualLearner | None, bias: float = 0.6) -> float:
    """Base (``learner=None``) or base+residual success on 100 fixed arm_reach episodes."""
    env = make("arm_reach", 50, seed=999)
    try:
        base = make_expert("arm_reach", env, bias=bias_vector(bias))
        ctrl = base if learner is None else ResidualController(base, learner)
        return rollout(env, ctrl, 100, seed=999, on_reset=ctrl.reset).success_rate
    finally:
        env.close()


def train(
    seed: int,
    cfg: ResidualConfig = CONFIG,
    bias: float = 0.6,
    on_eval: Callable[[int, ResidualLearner], None] | None = None,
    eval_every: int = 2_000,
) -> ResidualLearner:
    """The residual learner trained on the biased base in 16 envs; ``on_eval(env_steps,
    learner)`` every ``eval_every`` env steps."""
    torch.manual_seed(seed)
    env = make("arm_reach", 16, seed=seed)
    learner = ResidualLearner(env.observation_spec["state"].shape[0], 7, cfg, seed=seed)
    next_eval = eval_every

    def on_step(steps: int, info: dict[str, Any]) -> None:
        nonlocal next_eval
        if on_eval is not None and steps >= next_eval:
            next_eval += eval_every
            on_eval(steps, learner)

    try:
        base = make_expert("arm_reach", env, bias=bias_vector(bias))
        collect_and_learn(env, base, cfg, learner, seed=seed, on_step=on_step)
    finally:
        env.close()
    return learner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--env-steps", type=int, default=CONFIG.env_steps)
    ap.add_argument("--eval-every", type=int, default=2_000)
    ap.add_argument("--bias", type=float, default=0.6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = dataclasses.replace(CONFIG, env_steps=args.env_steps)
    print(
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs ({platform.processor() or 'cpu'}), torch {torch.__version__}, "
        f"bias {args.bias}"
    )
    base_rate = success_rate(None, args.bias)
    print(f"base (anchor): {base_rate:.0%} on 100 episodes")
    checkpoints = list(range(args.eval_every, args.env_steps + 1, args.eval_every))
    print("| seed | " + " | ".join(f"{s // 1000}k" for s in checkpoints) + " | wall (s) |")
    print("|---|" + "---:|" * (len(checkpoints) + 1))
    finals = []
    for seed in args.seeds:
        row: list[float] = []
        t0 = time.perf_counter()
        train(
            seed,
            cfg,
            args.bias,
            lambda steps, learner, row=row: row.append(success_rate(learner, args.bias)),
            args.eval_every,
        )
        wall = time.perf_counter() - t0
        finals.append(row[-1])
        print(f"| {seed} | " + " | ".join(f"{r:.0%}" for r in row) + f" | {wall:.0f} |", flush=True)
    median = statistics.median(finals)
    print(f"median final success {median:.0%} (base {base_rate:.0%})")
    print(f"lift_points={100 * (median - base_rate):.0f}")


if __name__ == "__main__":
    main()
