"""Evaluation reports people look at: report.json, PNG plots, rollout videos."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from robot_rl.algos.evaluate import EvalResult
from robot_rl.data.video import VideoSegment, tile_videos


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> Path:
    """Encode ``frames (T, H, W, 3)`` uint8 (H and W even) as H.264 at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    seg = VideoSegment(path.parent, frames.shape[1:], fps)
    try:
        seg.write(frames)
        seg.close()
        seg.path.replace(path)
    finally:
        seg.discard()
    return path


def plot_eval(results: Mapping[str, EvalResult], out: Path) -> list[Path]:
    """``success.png`` (rate with 95% CI per task) and ``episodes.png`` (length and return
    histograms); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names = list(results)
    rates = np.array([results[n].stats.success_rate for n in names])
    ci = np.array([results[n].stats.success_ci for n in names])
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(names), 3.2))
    ax.bar(names, rates, color="#4c72b0")
    # a Wilson bound can miss 0% / 100% by a rounding error: errorbar wants no negative lengths
    yerr = np.clip([rates - ci[:, 0], ci[:, 1] - rates], 0.0, None)
    ax.errorbar(names, rates, yerr=yerr, fmt="none", c="k")
    for i, r in enumerate(rates):
        n = results[names[i]].stats.episodes
        inside = r > 0.25  # inside the bar, clear of the interval's whisker
        y, color = (r / 2, "white") if inside else (r + 0.05, "black")
        ax.text(i, y, f"{r:.0%}\n(n={n})", ha="center", va="center", fontsize=8, color=color)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate (95% Wilson CI)")
    if len(names) > 4:  # a sweep's setting names would run into each other
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    success = out / "success.png"
    fig.savefig(success, dpi=120)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    for n in names:
        s = results[n].stats
        a1.hist(s.lengths, bins=20, alpha=0.6, label=n)
        a2.hist(s.returns, bins=20, alpha=0.6, label=n)
    a1.set_xlabel("episode length (steps)")
    a2.set_xlabel("episode return")
    a1.set_ylabel("episodes")
    a1.legend(fontsize=8)
    fig.tight_layout()
    episodes = out / "episodes.png"
    fig.savefig(episodes, dpi=120)
    plt.close(fig)
    return [success, episodes]


def plot_training(summary: Mapping[str, Any], out: Path) -> Path:
    """``training.png``: loss curve and eval success over optimizer steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    curve = np.array(summary.get("loss_curve") or [[0, np.nan]], dtype=float)
    a1.plot(curve[:, 0], curve[:, 1])
    a1.set_yscale("log")
    a1.set_xlabel("step")
    a1.set_ylabel("denoising loss")
    history = summary.get("eval_history") or []
    tasks = sorted({t for h in history for t in h["success"]})
    for t in tasks:
        pts = [(h["step"], h["success"][t]) for h in history if t in h["success"]]
        a2.plot(*zip(*pts), marker="o", label=t)
    a2.set_ylim(0, 1)
    a2.set_xlabel("step")
    a2.set_ylabel("eval success (EMA policy)")
    if tasks:
        a2.legend(fontsize=8)
    fig.tight_layout()
    path = out / "training.png"
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_eval_report(
    results: Mapping[str, EvalResult], out: Path, *, fps: int, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """``report.json`` + plots + ``rollouts_<task>.mp4`` in ``out``; returns the report."""
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {**meta, "tasks": {}}
    for name, r in results.items():
        entry: dict[str, Any] = {
            "summary": r.stats.summary(),
            "wall_seconds": r.seconds,
            "policy_ms_per_replan": r.summary()["policy_ms_per_replan"],
            "successes": r.stats.successes,
            "returns": r.stats.returns,
            "lengths": r.stats.lengths,
        }
        if r.safety:
            entry["safety"] = r.safety
        if r.videos:
            video = write_mp4(out / f"rollouts_{name}.mp4", tile_videos(r.videos), fps)
            entry["video"] = video.name
        report["tasks"][name] = entry
    report["plots"] = [p.name for p in plot_eval(results, out)]
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


SWEEP_METRICS = {
    "survival_time": "mean survival time (s)",
    "tracking_error": "mean tracking error (m/s)",
}
"""Task metrics a sweep table shows, when the task reports them (the humanoid tasks do)."""


def sweep_table(results: Mapping[str, EvalResult], title: str = "") -> Table:
    """One row per setting: success with its 95% CI, the task metrics of :data:`SWEEP_METRICS`
    the task reports, and the mean return."""
    summaries = {name: r.stats.summary() for name, r in results.items()}
    metrics = [m for m in SWEEP_METRICS if any(f"mean_{m}" in s for s in summaries.values())]
    table = Table(title=title or None)
    table.add_column("setting", no_wrap=True)
    table.add_column("success", justify="right", no_wrap=True)
    table.add_column("95% CI", justify="right", no_wrap=True)
    for m in metrics:
        table.add_column(SWEEP_METRICS[m], justify="right")
    table.add_column("mean return", justify="right")
    for name, s in summaries.items():
        cells = [
            f"{s['success_rate']:.1%}",
            f"{s['success_ci95_low']:.1%}–{s['success_ci95_high']:.1%}",
        ]
        cells += [_cell(s.get(f"mean_{m}", float("nan"))) for m in metrics]
        table.add_row(name, *cells, f"{s['mean_return']:.2f}")
    return table


def _cell(value: float) -> str:
    return f"{value:.3g}" if np.isfinite(value) else "-"


def plot_residual(history: Sequence[Mapping[str, float]], base_success: float, out: Path) -> Path:
    """``success.png``: base+residual success against env steps, the frozen base as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["env_steps"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [100 * h["success"] for h in history], "o-", label="base + residual")
    ax.axhline(100 * base_success, color="gray", ls="--", label="base (frozen BC policy)")
    ax.set(xlabel="env steps", ylabel="success (%)", ylim=(0, 102), title="residual RL")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "success.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
