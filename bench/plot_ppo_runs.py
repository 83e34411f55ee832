"""Plot the evaluation curves of several ``robot-rl train ppo`` runs on one figure.

    python bench/plot_ppo_runs.py --out docs/figures/humanoid_balance_ppo.png \\
        "seed 0=runs/bal_s0" "seed 1=runs/bal_s1" "seed 2=runs/bal_s2"

Each run's evaluations (``evaluations`` in its ``ppo_summary.json``: the task as configured,
``eval_episodes`` episodes every ``eval_every`` env steps) give two panels: success rate and
mean survival time against env steps. A label ending in ``(shared)`` is drawn dashed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def evaluations(run: str) -> list[dict]:
    path = Path(run) / "ppo_summary.json"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist (is {run} a finished `robot-rl train ppo` run?)")
    return json.loads(path.read_text())["evaluations"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="label=run_dir")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--title", default="humanoid_balance PPO, 30 minutes on the 2-core CPU")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    table = {}
    for i, spec in enumerate(args.runs):
        label, run = spec.split("=", 1)
        ev = evaluations(run)
        x = [e["env_steps"] / 1e6 for e in ev]
        style = dict(marker="o", ls="--" if label.endswith("(shared)") else "-", color=f"C{i}")
        left.plot(x, [100 * e["success_rate"] for e in ev], label=label, **style)
        right.plot(x, [e["mean_survival_time"] for e in ev], label=label, **style)
        table[label] = [(e["env_steps"], round(e["success_rate"], 3)) for e in ev]
    left.axhline(100 * args.target, color="red", ls=":", lw=1, label=f"target {args.target:.0%}")
    left.set_ylabel(f"success ({ev[0]['episodes']} episodes, %)")
    right.set_ylabel("mean survival time (s)")
    for ax in (left, right):
        ax.set_xlabel("env steps (M)")
        ax.legend(fontsize=8)
    fig.suptitle(args.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(json.dumps(table))


if __name__ == "__main__":
    main()
