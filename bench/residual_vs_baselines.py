"""Residual RL on a frozen BC policy against from-scratch baselines, at one env-step budget.

    python bench/residual_vs_baselines.py --base runs/arm_push_flow/bc/checkpoints/best \
        --demos runs/arm_push_flow/data --algo-config residual_arm_push --base-noise-scale 0 \
        --num-envs 32 --budget 500000 --eval-every 25000 --eval-episodes 200 --jobs 2

Three methods, each evaluated every ``--eval-every`` env steps on the same ``--eval-episodes``
episodes (fixed seed), deterministic actions:

- ``residual``: the frozen base + residual actor-critic (``robot_rl.algos.residual``), sparse
  success reward, demonstrations relabeled with the base (RLPD 50/50 batches).
- ``no_base``: the same learner, same demonstrations and reward, with the base replaced by the
  zero action and the correction bound raised to the whole action range (RLPD-style off-policy RL
  with demonstrations, no BC policy); an annealed ``residual_penalty_start`` applies to the
  residual only.
- ``sb3_sac``: Stable-Baselines3 SAC from scratch on the task's gymnasium adapter with the task's
  shaped reward (``pip install -e ".[bench]"``; skipped with a note when missing). It needs no
  base: ``--methods sb3_sac --task arm_push`` runs it alone (while the base trains, say), and a
  later ``--resume`` run with the same ``--out`` takes its saved curve.

``--jobs N`` runs the methods in N processes at once (one torch thread each); ``--algo-config``
names the learners' config in ``configs/algo/`` and ``--algo`` (JSON) overrides it (its shaping,
for example, both learners then also apply to the demonstrations); ``--base-noise-scale 0`` runs
a flow base deterministically.

Each method saves its state at every evaluation under ``--out``/state/ (networks, optimizers,
replay buffer, curve; safetensors + JSON); ``--resume`` continues from there, so a budget longer
than one sitting runs in several (the wall seconds reported add up the sittings).

Prints, for each method and each ``--threshold`` success rate (default 90% and 95%), the env
steps of the first evaluation at or above it and of the first from which it stays there up to
the last evaluation ("held": the residual's early dip below its base does not count), and the
ratio best-baseline / residual for both (rounded down; a lower bound when no baseline gets there
by its last evaluation; none for "first reached" when the base alone starts there, unbounded for
"held" when the base starts there and the residual never falls below it). Writes ``curves.json`` and
``curves.png`` to ``--out``; ``--from-curves runs/…/curves.json`` prints an earlier run's table
again, at other thresholds if asked.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.algos.residual import (
    ResidualConfig,
    ResidualLearner,
    collect_and_learn,
    online_buffer,
)
from robot_rl.algos.residual_demos import demo_buffer
from robot_rl.algos.residual_job import (
    TRAINER_JSON,
    ResidualController,
    base_runner,
    evaluate_controller,
    resume_residual,
    save_residual,
)
from robot_rl.algos.sac_state import load_sac, save_sac
from robot_rl.algos.train_state import recover_checkpoint
from robot_rl.core.errors import ConfigError
from robot_rl.data import LeRobotDataset
from robot_rl.envs import load_task_config, make
from robot_rl.envs.config import build_config
from robot_rl.envs.task_env import TaskEnv
from robot_rl.envs.vec_env import Obs
from robot_rl.policies import load

Curve = list[tuple[int, float]]


class ZeroBase:
    """The "no base policy" controller: the zero action everywhere."""

    def __init__(self, env: TaskEnv) -> None:
        self.n, self.a = env.num_envs, env.action_dim

    def __call__(self, obs: Obs) -> torch.Tensor:
        return torch.zeros(self.n, self.a)

    def reset(self, ids: torch.Tensor) -> None:
        pass


def state_dir(args: argparse.Namespace, name: str) -> Path:
    """Where a method keeps what ``--resume`` continues from (rewritten at every evaluation)."""
    return Path(args.out) / "state" / name


def as_history(curve: Curve) -> list[dict[str, float]]:
    return [{"env_steps": s, "success": r} for s, r in curve]


def run_learner(
    args: argparse.Namespace,
    task: Any,
    cfg: ResidualConfig,
    policy: Any,
    with_base: bool,
    demos: Any,
) -> tuple[Curve, float]:
    """The learning curve, and the wall seconds of earlier (resumed) sessions."""
    name = "residual" if with_base else "no_base"
    env = make(task, args.num_envs, seed=args.seed)
    learner = ResidualLearner(
        env.observation_spec["state"].shape[0], env.action_dim, cfg, seed=args.seed
    )
    replay = online_buffer(env, cfg, learner.device)
    where = state_dir(args, name)
    settings = {  # what a resumed method must share with its saved state
        "base": str(Path(args.base).resolve()),
        "algo": asdict(cfg),
        "seed": args.seed,
        "eval_episodes": args.eval_episodes,
        "base_noise_scale": args.base_noise_scale,
    }

    def make_base(e: TaskEnv) -> Any:
        return base_runner(policy, e, args.base_noise_scale) if with_base else ZeroBase(e)

    def build(e: TaskEnv) -> ResidualController:
        return ResidualController(make_base(e), learner)

    def evaluate() -> float:
        stats = evaluate_controller(
            task, build, args.eval_episodes, args.eval_envs, args.seed + 10_000
        )
        return stats.success_rate

    done, earlier, t0 = 0, 0.0, time.perf_counter()
    if args.resume and (recover_checkpoint(where) / TRAINER_JSON).exists():
        meta = resume_residual(where, learner, replay, settings)
        curve: Curve = [(h["env_steps"], h["success"]) for h in meta["history"]]
        done, earlier = int(meta["steps"]), float(meta["wall_seconds"])
        print(f"  {name}: resumed at {done} env steps", flush=True)
    else:
        curve = [(0, evaluate())]
    next_eval = (done // args.eval_every + 1) * args.eval_every  # where an unbroken run would

    def on_step(steps: int, info: dict[str, Any]) -> None:
        nonlocal next_eval
        if steps >= next_eval:
            next_eval += args.eval_every
            curve.append((steps, evaluate()))
            print(f"  {name} {steps:>8d} env steps: success {curve[-1][1]:.1%}", flush=True)
            wall = earlier + time.perf_counter() - t0
            meta = settings | {"steps": steps, "history": as_history(curve), "wall_seconds": wall}
            save_residual(where, learner, meta, replay)

    base = make_base(env)
    try:
        collect_and_learn(env, base, cfg, learner, seed=args.seed, demos=demos, on_step=on_step,
                          buffer=replay, start_steps=done)  # fmt: skip
    finally:
        env.close()
    return curve, earlier


def run_sac(args: argparse.Namespace, task: Any) -> tuple[Curve, float] | None:
    try:
        from stable_baselines3 import SAC
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        print("  stable-baselines3 is not installed: pip install stable-baselines3")
        return None
    import gymnasium as gym

    from robot_rl.envs.gym_adapter import register_gym_envs
    from robot_rl.envs.registry import TASKS

    register_gym_envs()
    spec = TASKS.get(task.name)
    env = gym.make(spec.gym_id, **{"episode_length": task.episode_length})
    model = SAC("MlpPolicy", env, seed=args.seed, verbose=0, device="cpu")
    where, t0 = state_dir(args, "sb3_sac"), time.perf_counter()
    settings = {"task": task.name, "seed": args.seed, "eval_episodes": args.eval_episodes}
    saved = load_sac(where, model, settings) if args.resume else None

    class SACController:
        def __call__(self, obs: Obs) -> torch.Tensor:
            action, _ = model.predict(obs["state"].numpy(), deterministic=True)
            return torch.as_tensor(np.asarray(action, dtype=np.float32))

        def reset(self, ids: torch.Tensor) -> None:
            pass

    def evaluate() -> float:
        stats = evaluate_controller(
            task, lambda e: SACController(), args.eval_episodes, args.eval_envs, args.seed + 10_000
        )
        return stats.success_rate

    if saved is not None:
        curve: Curve = [(s, r) for s, r in saved["curve"]]
        earlier = float(saved["wall_seconds"])
        print(f"  sb3_sac: resumed at {model.num_timesteps} env steps", flush=True)
    else:
        curve, earlier = [(0, evaluate())], 0.0

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                curve.append((self.num_timesteps, evaluate()))
                print(
                    f"  sb3_sac {self.num_timesteps:>8d} env steps: success {curve[-1][1]:.1%}",
                    flush=True,
                )
                wall = earlier + time.perf_counter() - t0
                save_sac(where, model, settings | {"curve": curve, "wall_seconds": wall})
            return True

    left = args.budget - model.num_timesteps
    if left > 0:  # a resumed model counts on from its saved steps
        model.learn(total_timesteps=left, callback=Every(), reset_num_timesteps=saved is None)
    env.close()
    return curve, earlier


def steps_to(curve: Curve | None, threshold: float, held: bool = False) -> int | None:
    """Env steps of the first evaluation at or above ``threshold``; with ``held``, of the first
    one from which every later evaluation stays there (a residual's early dip below its base
    does not count as having got there). None: it did not."""
    if not curve:
        return None
    if not held:
        return next((s for s, r in curve if r >= threshold), None)
    since = None
    for s, r in reversed(curve):  # back from the last evaluation while it stays there
        if r < threshold:
            break
        since = s
    return since


def pct(rate: float) -> str:
    """A success rate as printed in labels: 0.9 → "90%", 0.925 → "92.5%"."""
    return f"{100 * rate:g}%"


def ratio(reach: dict[str, int | None], horizon: int, held: bool = False) -> str:
    """Env steps the best (fastest) baseline took to a threshold over the residual method's, as
    printed; ``reach`` maps each method to its env steps there (None: not by its last
    evaluation; ``held``: the steps from which it stays there), ``horizon`` is the env steps of
    the baselines' earliest last evaluation: the lower bound when none got there. Rounded down,
    so a bound is never overstated. With ``held``, a residual there from step 0 (its base starts
    there and it never falls below) is "unbounded"; without, 0 steps have no ratio."""
    if "residual" not in reach:
        return "n/a (residual not run)"
    ours = reach["residual"]
    baselines = [n for n in reach if n != "residual"]
    got = [reach[n] for n in baselines if reach[n] is not None]
    if ours is None:
        return "n/a (residual did not reach it)"
    if ours == 0 and not held:  # the base alone starts there; whether it stays: "held"
        return "n/a (the base alone starts there, at 0 env steps)"
    if ours == 0:  # the base starts there and the residual never fell below it
        theirs = (
            f"the fastest baseline took {min(got)} env steps"
            if got
            else f"no baseline got there by its last evaluation, {horizon} env steps"
        )
        return f"unbounded (the base starts there and the residual never fell below it; {theirs})"

    def down(steps: int) -> str:  # two decimals, rounded down
        return f"{math.floor(100 * steps / ours) / 100:.2f}"

    if got:
        return down(min(got))
    if baselines:
        return (
            f">{down(horizon)} (no baseline got there by its last evaluation, {horizon} env steps)"
        )
    return "n/a (no baseline ran)"


def report(curves: dict[str, Curve], seconds: dict[str, float], thresholds: list[float]) -> str:
    """The results table (env steps to each threshold: first reached / held from then on to the
    last evaluation) and the baseline/residual ratios, as printed."""
    heads = " | ".join(f"env steps to {pct(t)} (first / held)" for t in thresholds)
    lines = [f"\n| method | success at 0 | final success | {heads} | wall (s) |"]
    lines.append("|---|---:|---:|" + "---:|" * len(thresholds) + "---:|")
    reach = {
        (t, held): {n: steps_to(c, t, held) for n, c in curves.items()}
        for t in thresholds
        for held in (False, True)
    }
    for name, curve in curves.items():
        cells = []
        for t in thresholds:
            hits = (reach[t, False][name], reach[t, True][name])
            cells.append(" / ".join("-" if h is None else f"{h}" for h in hits))
        start, final = curve[0][1], curve[-1][1]
        wall = f"{seconds[name]:.0f}" if name in seconds else "-"
        lines.append(f"| {name} | {start:.1%} | {final:.1%} | {' | '.join(cells)} | {wall} |")
    lines.append("(-: not by the method's last evaluation)")
    horizon = min((c[-1][0] for n, c in curves.items() if n != "residual"), default=0)
    for t in thresholds:
        for held, how in ((False, "first reached"), (True, "held to the end")):
            lines.append(
                f"ratio_baseline_over_residual@{pct(t)} ({how}): "
                f"{ratio(reach[t, held], horizon, held)}"
            )
    return "\n".join(lines)


def read_curves(path: Path) -> tuple[dict[str, Curve], dict[str, float]]:
    """The curves and wall seconds of a ``curves.json``; ValueError (or KeyError, TypeError)
    for anything else."""
    record = json.loads(path.read_text())
    curves = {str(n): [(int(s), float(r)) for s, r in c] for n, c in record["curves"].items()}
    seconds = {str(n): float(t) for n, t in record.get("seconds", {}).items()}
    if not curves or not all(curves.values()):
        raise ValueError("no curve, or an empty one")
    return curves, seconds


def plot(curves: dict[str, Curve], thresholds: list[float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, curve in curves.items():
        ax.plot([s for s, _ in curve], [100 * r for _, r in curve], "o-", label=name)
    for t in thresholds:
        ax.axhline(100 * t, color="gray", ls=":", lw=1, label=f"{pct(t)} success")
    ax.set(xlabel="env steps", ylabel="success (%)", ylim=(0, 102))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)


METHODS = ("residual", "no_base", "sb3_sac")


def algo_config(name: str) -> dict[str, Any]:
    """The fields of ``configs/algo/<name>.yaml`` (a residual config, e.g. residual_arm_push)."""
    from robot_rl.cli.compose import compose_config, to_container

    return dict(to_container(compose_config("train_residual", [f"algo={name}"]))["algo"])


def learner_config(method: str, algo: dict[str, Any], budget: int) -> ResidualConfig:
    """The residual learner's config for ``residual`` or ``no_base`` (whose correction spans the
    whole action range, with ``residual_penalty`` throughout: the penalty's anneal protects a
    base's behaviour while the critic is young, and ``no_base`` has no base), ``budget`` env
    steps; a bad field is a ConfigError."""
    own: dict[str, Any] = {"env_steps": budget}
    if method == "no_base":
        own |= {"action_scale": 1.0, "action_scale_per_dim": [], "residual_penalty_start": None}
    return build_config(ResidualConfig, algo, own, where="algo")


def run_method(name: str, args: argparse.Namespace) -> tuple[Curve | None, float]:
    """One method's learning curve and wall seconds (runs in a worker process with --jobs)."""
    if args.jobs > 1:
        torch.set_num_threads(1)
    t0 = time.perf_counter()
    print(f"{name}: starting", flush=True)
    policy = load(args.base) if args.base else None
    task = load_task_config(args.task or policy.config.task, {})
    if name == "sb3_sac":
        ran = run_sac(args, task)
        if ran is None:
            return None, 0.0
        curve, earlier = ran
    else:
        with_base = name == "residual"
        cfg = learner_config(name, args.resolved_algo, args.budget)
        noise = args.base_noise_scale
        demos = demo_buffer(LeRobotDataset(args.demos), policy, cfg, noise_scale=noise)
        if not with_base:
            for key in ("base_action", "next_base_action"):
                demos.extras[key].zero_()
        curve, earlier = run_learner(args, task, cfg, policy, with_base, demos)
    return curve, earlier + time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="BC policy checkpoint directory (residual, no_base)")
    ap.add_argument("--demos", help="demonstration dataset (the BC data; residual, no_base)")
    ap.add_argument("--task", default=None, help="default: the checkpoint's task")
    ap.add_argument("--budget", type=int, default=150_000, help="env steps per method")
    ap.add_argument("--eval-every", type=int, default=15_000)
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--eval-envs", type=int, default=50)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument(
        "--threshold", default="0.9,0.95", help="success rates to time, comma-separated"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="residual,no_base,sb3_sac")
    ap.add_argument(
        "--algo-config", default="residual", help="configs/algo/<name>.yaml, e.g. residual_arm_push"
    )
    ap.add_argument(
        "--algo", default="{}", help="JSON overrides of that config, e.g. '{\"utd\": 0.5}'"
    )
    ap.add_argument("--base-noise-scale", type=float, default=1.0, help="0: deterministic base")
    ap.add_argument("--jobs", type=int, default=1, help="methods run at once, in processes")
    ap.add_argument("--out", default="runs/bench_residual")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue each method from the state it saved in --out at its last evaluation",
    )
    ap.add_argument(
        "--from-curves",
        metavar="CURVES_JSON",
        help="run nothing: print the table of an earlier run's curves.json at --threshold",
    )
    args = ap.parse_args()
    names = args.methods.split(",")
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {sorted(METHODS)}")
    bad_threshold = f"--threshold takes rates in (0, 1], comma-separated; got {args.threshold!r}"
    try:
        args.thresholds = [float(t) for t in args.threshold.split(",")]
    except ValueError:
        ap.error(bad_threshold)
    if not all(0 < t <= 1 for t in args.thresholds):
        ap.error(bad_threshold)
    if args.from_curves:
        try:
            curves, seconds = read_curves(Path(args.from_curves))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            ap.error(f"{args.from_curves}: not a curves.json of this script ({e})")
        print(report(curves, seconds, args.thresholds))
        return
    learners = [n for n in names if n != "sb3_sac"]
    if learners and not (args.base and args.demos):
        ap.error(f"--base and --demos are required to run {', '.join(learners)}")
    if not (args.base or args.task):
        ap.error("sb3_sac alone needs --task (or --base, whose task it takes)")
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    try:  # a bad config fails here, not in a worker after the others started
        args.resolved_algo = {**algo_config(args.algo_config), **json.loads(args.algo)}
        for name in set(names) - {"sb3_sac"}:
            learner_config(name, args.resolved_algo, args.budget)
    except (ConfigError, ValueError) as e:
        ap.error(str(e).splitlines()[0])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    task = load_task_config(args.task or load(args.base).config.task, {})
    print(
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs ({platform.processor() or 'cpu'}), torch {torch.__version__}; "
        f"task {task.name}, budget {args.budget} env steps, seed {args.seed}, "
        f"{args.jobs} job(s)",
        flush=True,
    )
    if args.jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            done = list(pool.map(run_method, names, [args] * len(names)))
    else:
        done = [run_method(name, args) for name in names]
    curves = {n: c for n, (c, _) in zip(names, done) if c is not None}
    seconds = {n: t for n, (_, t) in zip(names, done)}

    print(report(curves, seconds, args.thresholds))
    record = {"budget": args.budget, "curves": curves, "seconds": seconds}
    (out / "curves.json").write_text(json.dumps(record, indent=2))
    plot(curves, args.thresholds, out)


if __name__ == "__main__":
    main()
