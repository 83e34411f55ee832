"""How far arm_push misses: success and the closest cube-to-goal distance of every failed episode.

    python bench/push_misses.py --base runs/arm_push_flow/bc/checkpoints/best --noise-scale 0 \
        --episodes 200 --seed 1
    python bench/push_misses.py --residual runs/residual_arm_push/checkpoints/best --seed 1
    python bench/push_misses.py --base runs/arm_push_flow/bc/checkpoints/best --noise-scale 0 \
        --action-steps 2 --seed 30000

Runs the BC base (and base + residual when given) on the same episodes and prints a histogram
of the failures' closest approach (the ``closest_goal_distance`` episode metric, in cm): misses
just outside the success radius are an aim problem a small correction can fix; misses by far
are not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from robot_rl.algos.residual_job import (
    ResidualController,
    base_noise_scale,
    base_runner,
    evaluate_controller,
    load_residual,
)
from robot_rl.core.errors import ConfigError
from robot_rl.envs import load_task_config
from robot_rl.policies import load

BINS_CM = (0.0, 3.0, 3.5, 4.0, 5.0, 7.5, 10.0, np.inf)


def report(name: str, closest_cm: np.ndarray, success: np.ndarray) -> None:
    failed = closest_cm[~success]
    counts, _ = np.histogram(failed, bins=BINS_CM)
    cells = " | ".join(str(c) for c in counts)
    print(f"| {name} | {success.mean():.1%} | {len(failed)} | {cells} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--base", default=None, help="BC policy checkpoint (default: the residual's base)"
    )
    ap.add_argument("--residual", default=None, help="residual checkpoint on that base")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--envs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--noise-scale",
        type=float,
        default=None,
        help="the base's sampling noise (default: the residual's training scale, else 1)",
    )
    ap.add_argument(
        "--action-steps",
        type=int,
        default=None,
        help="the base's execution horizon Ta (default: the checkpoint's)",
    )
    args = ap.parse_args()

    try:
        learner, meta = load_residual(args.residual) if args.residual else (None, {})
        noise = base_noise_scale(args.noise_scale, meta)
        if not (args.base or meta.get("base")):
            ap.error("give --base, or --residual (its checkpoint names its base)")
        policy = load(args.base or meta["base"])
    except ConfigError as e:
        ap.error(str(e))
    ta = policy.config.action_steps if args.action_steps is None else args.action_steps
    if learner is not None and ta != policy.config.action_steps:
        print(f"note: the residual was trained on the base's own Ta {policy.config.action_steps}")
    if args.base and meta.get("base") and Path(args.base).resolve() != Path(meta["base"]):
        print(f"note: --base {args.base} is not the base the residual was trained on")
    task = load_task_config("arm_push", {})
    runs = {"base": lambda e: base_runner(policy, e, noise, ta)}
    if learner is not None:
        runs["base + residual"] = lambda e: ResidualController(
            base_runner(policy, e, noise, ta), learner
        )
    edges = " | ".join(f"{lo:g}–{hi:g} cm" for lo, hi in zip(BINS_CM[:-1], BINS_CM[1:]))
    print(f"{args.episodes} episodes, seed {args.seed}, base noise scale {noise}, Ta {ta}")
    print("failures by the cube's closest approach to the goal:")
    print(f"| controller | success | failures | {edges} |")
    print("|---|---:|---:|" + "---:|" * (len(BINS_CM) - 1))
    for name, build in runs.items():
        try:  # the runner checks --action-steps against the policy's horizon
            stats = evaluate_controller(task, build, args.episodes, args.envs, args.seed)
        except ConfigError as e:
            ap.error(str(e))
        closest = 100.0 * np.asarray(stats.metrics["closest_goal_distance"])
        report(name, closest, np.asarray(stats.successes))


if __name__ == "__main__":
    main()
