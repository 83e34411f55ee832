"""Scripted-expert success on every arm task, clean and noisy, over many episodes.

    python bench/expert_success.py --episodes 500 --noise 0 0.1 0.3 0.5

Prints a markdown table (success rate with a Wilson 95% interval, mean episode length) and, with
--json, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import time

import robot_rl.envs as E
from robot_rl.algos.rollout import rollout
from robot_rl.envs.experts import make_expert


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["arm_reach", "arm_push", "arm_pick_place"])
    ap.add_argument("--noise", nargs="+", type=float, default=[0.0, 0.1, 0.3, 0.5])
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--num-envs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    rows = []
    print("| task | expert noise | episodes | success | 95% CI | mean length (steps) | wall (s) |")
    print("|---|---|---|---|---|---|---|")
    for task in args.tasks:
        for noise in args.noise:
            env = E.make(task, args.num_envs, seed=args.seed)
            expert = make_expert(task, env, noise=noise, seed=args.seed)
            t0 = time.perf_counter()
            stats = rollout(env, expert.act, args.episodes, seed=args.seed, on_reset=expert.reset)
            wall = time.perf_counter() - t0
            s = stats.summary()
            rows.append({"task": task, "noise": noise, "wall_s": wall, **s})
            print(
                f"| {task} | {noise} | {s['episodes']} | {s['success_rate']:.1%} | "
                f"{s['success_ci95_low']:.1%}–{s['success_ci95_high']:.1%} | "
                f"{s['mean_length']:.1f} | {wall:.1f} |",
                flush=True,
            )
            env.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
