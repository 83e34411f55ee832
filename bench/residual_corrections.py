"""What corrections a residual checkpoint makes on top of its base, and what its critic thinks of
them: per action dimension, the mean and mean absolute correction over the first steps of
fresh episodes, and the critic ensemble's Q gain (base+residual minus base) against the spread
of its heads.

    python bench/residual_corrections.py --residual runs/res_s0/checkpoints/last \
        --episodes 20 --steps 40

A correction with a consistent sign on a dimension where the Q gain is small next to the heads'
spread is the critic's noise turned into behaviour (BENCHMARKS.md, Residual RL, session 20).
"""

from __future__ import annotations

import argparse

import torch

from robot_rl.algos.residual_job import base_noise_scale, base_runner, load_residual
from robot_rl.core.errors import RobotRLError
from robot_rl.envs import load_task_config, make
from robot_rl.policies import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residual", required=True, help="a residual checkpoint directory")
    ap.add_argument("--base", default=None, help="default: the checkpoint's base")
    ap.add_argument("--noise-scale", type=float, default=None, help="default: as trained")
    ap.add_argument("--episodes", type=int, default=20, help="parallel envs, one episode each")
    ap.add_argument("--steps", type=int, default=40, help="control steps from the start")
    ap.add_argument("--seed", type=int, default=123)
    args = ap.parse_args()
    if args.episodes < 1 or args.steps < 1:
        ap.error("--episodes and --steps must be >= 1")
    try:
        learner, meta = load_residual(args.residual)
        policy = load(args.base or meta["base"])
    except RobotRLError as e:
        ap.error(str(e).splitlines()[0])
    task = load_task_config(meta.get("task") or policy.config.task, {})
    env = make(task, args.episodes, seed=args.seed)
    base = base_runner(policy, env, base_noise_scale(args.noise_scale, meta))
    active = learner.actor.active
    obs = env.reset(seed=args.seed)
    base.reset(torch.arange(args.episodes))
    corrections, gains, spreads = [], [], []
    try:
        with torch.no_grad():
            for _ in range(args.steps):
                base_action = base(obs).clamp(-1.0, 1.0)
                action = learner.act(obs["state"], base_action, 0.0)
                state = learner.norm(obs["state"])
                q_res, q_base = learner.critic(state, action), learner.critic(state, base_action)
                corrections.append((action - base_action)[:, active])
                gains.append(q_res.mean(0) - q_base.mean(0))
                spreads.append(q_res.std(0))
                obs, *_ = env.step(action)
    finally:
        env.close()
    c = torch.stack(corrections)  # (T, N, active dims)
    dims = active.nonzero().flatten().tolist()
    scale = learner.actor.scale[active]
    print(f"{args.residual}: {args.episodes} episodes x first {args.steps} steps, task {task.name}")
    print("| action dim | bound | mean correction | mean abs correction | abs / bound |")
    print("|---:|---:|---:|---:|---:|")
    for i, d in enumerate(dims):
        mean, mag = float(c[..., i].mean()), float(c[..., i].abs().mean())
        print(f"| {d} | {float(scale[i]):.2f} | {mean:+.3f} | {mag:.3f} | {mag / scale[i]:.2f} |")
    gain, spread = torch.stack(gains), torch.stack(spreads)
    print(
        f"critic: Q gain of the correction {float(gain.mean()):+.4f} (mean), spread of the heads "
        f"at base+residual {float(spread.mean()):.4f} (mean std)"
    )


if __name__ == "__main__":
    main()
