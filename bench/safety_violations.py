"""Hard-limit violations per 1000 steps in the simulated arm, without and with the safety chain.

    python bench/safety_violations.py --envs 32 --steps 600 --out docs/figures

Adversaries, each run with and without the chain of ``configs/safety/arm.yaml`` (the chain the
ROS 2 safety node runs, here filtering every simulated joint command):

- ``random``: uniform actions in [-1, 1] (end-effector deltas and gripper).
- ``trained``: a linear tanh policy on the standardized state, trained by the cross-entropy
  method (one candidate per env, a whole episode per generation) to *maximize* hard-limit
  violations of the unfiltered arm: joint limits, joint speed limits, the workspace box and the
  keep-out regions (table top, fixture).

Violations are counted from the simulated state after every step (``ViolationMeter``); the
target is 0 with the chain. Prints a table and writes ``safety_violations.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from robot_rl.algos.safety_sim import SimSafety, ViolationMeter
from robot_rl.core.progress import progress_bar
from robot_rl.envs import make
from robot_rl.safety import SafetyConfig, build_chain


class LinearAdversary:
    """``a = tanh(W · (s - mean) / std + b)`` with one parameter set per env ``(N, A, D + 1)``."""

    def __init__(self, params: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.params, self.mean, self.std = params, mean, std

    def __call__(self, obs) -> torch.Tensor:
        s = (obs["state"].double() - self.mean) / self.std
        s = torch.cat([s, torch.ones(len(s), 1, dtype=s.dtype)], dim=-1)
        return torch.tanh(torch.einsum("nad,nd->na", self.params, s)).float()


def run(env, policy, steps: int, meter: ViolationMeter) -> torch.Tensor:
    """Per-env violation counts ``(N,)`` over ``steps`` steps (counted on the state each step
    reaches, before an episode's reset)."""
    obs = env.reset(seed=0)
    total = torch.zeros(env.num_envs)

    def count(_env) -> None:
        nonlocal total
        total += torch.stack(list(meter.update().values())).sum(0).float()

    env.step_observer = count
    for _ in range(steps):
        obs, *_ = env.step(policy(obs))
    env.step_observer = None
    return total


def train_adversary(task: str, n: int, generations: int, elite: int, seed: int):
    env = make(task, n, seed=seed)
    obs = env.reset(seed=seed)
    cfg = SafetyConfig.load("arm")
    d, a = obs["state"].shape[1] + 1, env.action_dim
    # state statistics from a random rollout
    g = torch.Generator().manual_seed(seed)
    states = []
    for _ in range(50):
        obs, *_ = env.step(torch.rand((n, a), generator=g) * 2 - 1)
        states.append(obs["state"].double())
    states = torch.cat(states)
    mean, std = states.mean(0), states.std(0).clamp_min(1e-3)
    mu, sigma = torch.zeros(a, d, dtype=torch.float64), torch.ones(a, d, dtype=torch.float64)
    history = []
    with progress_bar("info") as bar:
        job = bar.add_task("training the adversary (CEM)", total=generations, info="")
        for _ in range(generations):
            params = mu + sigma * torch.randn((n, a, d), generator=g, dtype=torch.float64)
            meter = ViolationMeter(env, cfg)
            score = run(env, LinearAdversary(params, mean, std), env.max_episode_steps, meter)
            best = score.argsort(descending=True)[:elite]
            mu, sigma = params[best].mean(0), params[best].std(0) + 0.05
            history.append(float(score.mean()))
            bar.update(job, advance=1, info=f"violations/episode {history[-1]:.1f}")
    env.close()
    return LinearAdversary(mu.expand(n, a, d).clone(), mean, std), history


def measure(task: str, n: int, steps: int, policy, with_chain: bool) -> dict:
    env = make(task, n, seed=123)
    cfg = SafetyConfig.load("arm")
    meter = ViolationMeter(env, cfg)
    sim = SimSafety(build_chain("arm", cfg), env) if with_chain else None
    run(env, policy, steps, meter)
    env.close()
    out = {"per_1000": meter.result.per_1000(), "steps": meter.result.steps}
    if sim is not None:
        out["interventions"] = sim.chain.stats.scalars()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="arm_push")
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)

    g = torch.Generator()

    def random_policy(obs):
        return torch.rand((len(obs["state"]), 7), generator=g) * 2 - 1

    trained, history = train_adversary(args.task, args.envs, args.generations, 6, seed=0)
    results = {}
    for name, policy in (("random", random_policy), ("trained", trained)):
        for chain in (False, True):
            g.manual_seed(1)  # the random adversary draws the same actions with and without
            results[f"{name}, {'with' if chain else 'without'} chain"] = measure(
                args.task, args.envs, args.steps, policy, chain
            )
    kinds = list(next(iter(results.values()))["per_1000"])
    print(f"{'adversary':28s} " + " ".join(f"{k:>15s}" for k in kinds) + f" {'total':>9s}")
    for name, r in results.items():
        v = r["per_1000"]
        print(
            f"{name:28s} " + " ".join(f"{v[k]:15.2f}" for k in kinds) + f" {sum(v.values()):9.2f}"
        )
    print(
        "adversary training (violations per episode by generation):", [round(h, 1) for h in history]
    )
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(8, 3.5))
        names = list(results)
        x = np.arange(len(kinds))
        for i, name in enumerate(names):
            v = results[name]["per_1000"]
            ax.bar(x + (i - 1.5) * 0.2, [v[k] for k in kinds], 0.2, label=name)
        ax.set_xticks(x, kinds)
        ax.set_ylabel("violations per 1000 steps")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_title("hard-limit violations in the simulated arm")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "safety_violations.png", dpi=120)
        (out / "safety_violations.json").write_text(
            json.dumps({"results": results, "adversary_training": history}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
