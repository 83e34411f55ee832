"""Plot the evaluation curves of several ``robot-rl train residual`` runs on one figure.

    python bench/plot_residual_runs.py --out docs/figures/residual_arm_push_seeds.png \\
        "seed 0=runs/res_s0" "seed 1=runs/res_s1" "seed 2=runs/res_s2"

Each run's success is read from its TensorBoard log (``eval/success_rate``, 200 episodes per
point with the settings in BENCHMARKS.md). A curve starts at the run's own evaluation of the
frozen BC base (logged at step 0); runs from before that was logged start at ``--base``.
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def curve(run: str) -> list[tuple[int, float]]:
    events = EventAccumulator(f"{run}/tb")
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("eval/success_rate")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="label=run_dir")
    ap.add_argument(
        "--base",
        type=float,
        default=None,
        help="the BC base's success (0..1): a dashed line, and the start of runs that lack one",
    )
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    out = {}
    for i, spec in enumerate(args.runs):
        label, run = spec.split("=", 1)
        points = curve(run)
        if (not points or points[0][0] != 0) and args.base is not None:
            points = [(0, args.base), *points]
        out[label] = points
        ax.plot(
            [x / 1000 for x, _ in points],
            [100 * y for _, y in points],
            marker="o",
            label=label,
            color=f"C{i}",
        )
    if args.base is not None:
        ax.axhline(100 * args.base, color="gray", ls="--", lw=1, label=f"BC base ({args.base:.1%})")
    ax.axhline(100 * args.target, color="red", ls=":", lw=1, label=f"target {args.target:.0%}")
    ax.set_xlabel("env steps (thousands)")
    ax.set_ylabel("success, 200 episodes (%)")
    ax.set_title("residual RL on arm_push from the flow BC policy (position-only corrections)")
    ax.legend(fontsize=8)
    ax.set_ylim(70, 100)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
