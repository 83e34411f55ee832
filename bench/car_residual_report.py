"""Figures and a table for residual RL on rccar_race: lap time and crashes of the BC base and of
base + residual, per seed, on the training tracks and the held-out track.

Reads the runs that ``robot-rl train residual ... select=mean_laps_per_minute out=RUN/seedK``
wrote (``residual_summary.json``) and the evaluation reports of ``robot-rl eval`` for the base and
each seed's best residual (``report.json``, same evaluation seed, so the same episodes)::

    python bench/car_residual_report.py --runs runs/car_res --base-eval runs/car_bc/eval \\
        --base-heldout runs/car_bc/eval_heldout --out docs/figures
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

KEYS = ("success_rate", "mean_lap_time", "mean_crash", "mean_laps_per_minute", "episodes")


def summary(report: Path) -> dict[str, float]:
    tasks = json.loads((report / "report.json").read_text())["tasks"]
    (s,) = (t["summary"] for t in tasks.values())
    return {k: s[k] for k in KEYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder with one run per seed")
    ap.add_argument("--base-eval", type=Path, required=True, help="eval folder of the base")
    ap.add_argument("--base-heldout", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = ap.parse_args()
    seeds = sorted(p for p in args.runs.iterdir() if (p / "residual_summary.json").is_file())
    rows = {"base": (summary(args.base_eval), summary(args.base_heldout))}
    curves = {}
    for run in seeds:
        hist = json.loads((run / "residual_summary.json").read_text())["history"]
        curves[run.name] = [(h["env_steps"], h["mean_lap_time"], h["mean_crash"]) for h in hist]
        ckpt = run / "checkpoints" / "best"
        rows[run.name] = (summary(ckpt.with_name("best_eval")), summary(run / "eval_heldout"))

    print("| policy | track | episodes | success | lap time (s) | crashes | laps / min |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, (train, held) in rows.items():
        for label, s in (("training tracks", train), ("test_loop (held out)", held)):
            print(
                f"| {name} | {label} | {s['episodes']} | {s['success_rate']:.1%} | "
                f"{s['mean_lap_time']:.2f} | {s['mean_crash']:.1%} | "
                f"{s['mean_laps_per_minute']:.2f} |"
            )
    res = [rows[r.name][0] for r in seeds]
    base = rows["base"][0]
    gain = [1 - r["mean_lap_time"] / base["mean_lap_time"] for r in res]
    gains = ", ".join(f"{g:.1%}" for g in gain)
    crashes = ", ".join(f"{r['mean_crash']:.1%}" for r in res)
    print(
        f"\nlap time gain on the training tracks: {np.mean(gain):.1%} mean over {len(res)} seeds "
        f"({gains}); crashes base {base['mean_crash']:.1%}, residual {crashes}"
    )

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    for name, pts in curves.items():
        steps, lap, crash = zip(*pts)
        ax1.plot(np.array(steps) / 1e3, lap, marker="o", label=name)
        ax2.plot(np.array(steps) / 1e3, np.array(crash) * 100, marker="o", label=name)
    for ax, title in ((ax1, "mean lap time (s)"), (ax2, "episodes ending in a crash (%)")):
        ax.set_xlabel("env steps (thousands)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    names = list(rows)
    x = np.arange(len(names))
    for k, (label, idx) in enumerate((("training tracks", 0), ("test_loop (held out)", 1))):
        ax3.bar(x + 0.4 * k, [rows[n][idx]["mean_lap_time"] for n in names], 0.4, label=label)
    ax3.set_xticks(x + 0.2, names)
    ax3.set_title("lap time, best checkpoints (s)")
    ax3.legend()
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "car_residual.png", dpi=110)
    print(f"figure: {args.out / 'car_residual.png'}")


if __name__ == "__main__":
    main()
