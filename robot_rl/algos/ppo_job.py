"""The job behind ``robot-rl train ppo task=<task>``: PPO in N parallel envs with periodic
evaluation of the deterministic policy on fresh envs, TensorBoard, checkpoints (``last``, ``best``
by ``select``), resume, a summary JSON and a learning-curve PNG; :func:`load_ppo` for deployment."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from safetensors.torch import save_file
from torch import nn

from robot_rl.algos.bc_jobs import resolve_device
from robot_rl.algos.ppo import PPO, ActorCritic, PPOConfig, schedule_for_envs, train_ppo
from robot_rl.algos.rollout import RolloutStats, rollout
from robot_rl.algos.train_state import (
    load_optimizer,
    read_trainer,
    recover_checkpoint,
    save_trainer,
    write_checkpoint,
)
from robot_rl.core.errors import ConfigError
from robot_rl.core.progress import progress_bar
from robot_rl.envs import load_task_config, make, simulation_device
from robot_rl.envs.config import TaskConfig, build_config
from robot_rl.envs.vec_env import Obs, VecEnv
from robot_rl.policies.ppo_actor import MODEL_FILE, read_ppo_checkpoint


class PPOPolicy(nn.Module):
    """A trained PPO actor for evaluation and deployment: the deterministic (mean) action of the
    normalized ``state``, clipped to ``[-1, 1]``. ``meta``: the checkpoint's ``config.json``."""

    def __init__(self, model: ActorCritic, meta: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.meta = model.eval(), meta

    def forward(self, obs: Obs) -> torch.Tensor:
        """``(N, A)``: a rollout controller."""
        return self.model.act(obs)

    def act(self, obs: Obs) -> torch.Tensor:
        """``(N, 1, A)``: a chunk of one step, as every robot_rl policy returns."""
        return self.model.act(obs)[:, None]

    def reset(self, ids: torch.Tensor | None = None) -> None:
        """Stateless: nothing to clear between episodes."""


def obs_dims(env: VecEnv) -> dict[str, int]:
    """Feature size of each flat float observation key PPO can read (``state``, ``privileged``)."""
    return {
        k: spec.shape[0]
        for k, spec in env.observation_spec.items()
        if k in ("state", "privileged") and len(spec.shape) == 1
    }


def save_ppo(directory: Path, learner: PPO, meta: dict[str, Any]) -> None:
    """``ppo.safetensors`` (actor, critic, log-std, observation statistics), ``config.json``
    (algo settings, observation sizes, ``meta``), optimizer moments + ``trainer.json`` (lr)."""

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        model = learner.model
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / MODEL_FILE), metadata={"format": "pt"})
        info = {
            "algo": asdict(learner.cfg),
            "obs_dims": model.obs_dims,
            "action_dim": model.action_dim,
            **meta,
        }
        (tmp / "config.json").write_text(json.dumps(info, indent=2) + "\n")
        save_trainer(tmp, learner.optim, {"step": meta.get("env_steps", 0), "lr": learner.lr})

    write_checkpoint(directory, write)


def _build(
    directory: Path, meta: dict, tensors: dict, device: str | torch.device, seed: int = 0
) -> PPO:
    cfg = build_config(PPOConfig, meta.get("algo", {}), where=f"{directory}/config.json")
    try:
        learner = PPO(meta["obs_dims"], meta["action_dim"], cfg, device, seed)
        learner.model.load_state_dict(tensors)
    except (KeyError, RuntimeError) as e:
        msg = str(e).splitlines()[0]
        raise ConfigError(f"PPO checkpoint {directory} does not match its config: {msg}") from None
    return learner


def load_ppo(directory: str | Path, device: str | torch.device = "cpu") -> PPOPolicy:
    """A checkpoint written by :func:`save_ppo` as a deterministic policy. No pickle: tensors
    from safetensors, settings from JSON; a missing or damaged file is a :class:`ConfigError`."""
    directory = recover_checkpoint(Path(directory))
    meta, tensors = read_ppo_checkpoint(directory)
    return PPOPolicy(_build(directory, meta, tensors, device).model, meta)


@dataclass
class TrainPPOJob:
    """``robot-rl train ppo`` (``configs/train_ppo.yaml``)."""

    task: dict[str, Any] = field(default_factory=dict)
    algo: dict[str, Any] = field(default_factory=dict)
    # task-config overrides for the training envs only (evaluation runs the task as configured),
    # e.g. {"perturbation": {"push_interval_s": [1, 3]}}: more pushes to learn from
    train_task: dict[str, Any] = field(default_factory=dict)
    out: str | None = None  # default runs/ppo_<task>
    num_envs: int = 1024
    eval_every: int = 1_000_000  # env steps between evaluations and checkpoints
    eval_episodes: int = 100
    eval_envs: int = 100
    seed: int = 0
    device: str = "auto"
    resume: str | None = None  # a checkpoint directory: weights, statistics, optimizer, lr, steps
    # the evaluation summary entry the best checkpoint maximizes ("-name" minimizes), e.g.
    # success_rate, or mean_laps_per_minute on rccar_race
    select: str = "mean_return"
    # wall-clock budget: stop (after a final evaluation) once this many minutes have passed
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        for key in ("num_envs", "eval_every", "eval_episodes", "eval_envs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max_minutes must be > 0, got {self.max_minutes}")


def evaluate_ppo(
    task: TaskConfig, policy: PPOPolicy, episodes: int, num_envs: int, seed: int, device: str
) -> RolloutStats:
    """``episodes`` episodes of the deterministic policy on a fresh env (same seed ⇒ same
    episodes), the statistics frozen."""
    env = make(task, min(num_envs, episodes), seed=seed, device=simulation_device(task, device))
    try:
        return rollout(env, policy, episodes, seed=seed)
    finally:
        env.close()


def plot_learning_curve(train: list[dict], evals: list[dict], select: str, out: Path) -> Path:
    """``learning_curve.png``: training episode return and the evaluation ``select`` entry
    over env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    pts = [(t["env_steps"], t["episode/return"]) for t in train if "episode/return" in t]
    if pts:
        ax.plot(*zip(*pts, strict=True), color="#4c72b0", label="training episodes (stochastic)")
    ev = [(e["env_steps"], e["mean_return"]) for e in evals]
    if ev:
        ax.plot(*zip(*ev, strict=True), "o-", color="#dd8452", label="evaluation (mean action)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean episode return")
    ax.legend(fontsize=8)
    key = select.removeprefix("-")
    if key != "mean_return" and evals and key in evals[0]:
        ax2 = ax.twinx()
        pts2 = [(e["env_steps"], e[key]) for e in evals]
        ax2.plot(*zip(*pts2, strict=True), "s--", color="#55a868")
        ax2.set_ylabel(f"evaluation {key}", color="#55a868")
    fig.tight_layout()
    path = out / "learning_curve.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_train_ppo(job: TrainPPOJob, console: Console | None = None) -> dict[str, Any]:
    """Train, evaluating every ``eval_every`` env steps and at the end; returns the summary."""
    from torch.utils.tensorboard import SummaryWriter

    console = console or Console()
    if not job.task.get("name"):
        raise ConfigError("usage: robot-rl train ppo task=<task> [num_envs=N algo.<field>=...]")
    cfg = build_config(PPOConfig, job.algo, where="algo")
    task = load_task_config(job.task["name"], {k: v for k, v in job.task.items() if k != "name"})
    device = resolve_device(job.device)
    out = Path(job.out or f"runs/ppo_{task.name}")
    out.mkdir(parents=True, exist_ok=True)
    sim_device = simulation_device(task, device)
    env = make(task, job.num_envs, seed=job.seed, device=sim_device, **job.train_task)
    dims = obs_dims(env)
    learner = PPO(dims, env.action_dim, cfg, device, job.seed)
    done_steps, best_score = 0, -math.inf
    if job.resume:
        done_steps, best_score = _resume(learner, Path(job.resume), dims, env.action_dim)
        console.print(f"resumed {job.resume} at {done_steps} env steps, lr {learner.lr:.2g}")
    key, sign = job.select.removeprefix("-"), (-1.0 if job.select.startswith("-") else 1.0)
    eval_seed = job.seed + 10_000
    steps_per_env, minibatches = schedule_for_envs(cfg, job.num_envs)
    console.print(
        f"PPO on {task.name}: {job.num_envs} envs × {steps_per_env} steps per update, "
        f"{cfg.epochs} epochs × {minibatches} minibatches ({cfg.scale_with_envs}), {device}"
    )
    meta = {
        "task": task.name,
        "task_config": asdict(task),
        "train_task": job.train_task,
        "num_envs": job.num_envs,
    }
    tb = SummaryWriter(log_dir=str(out / "tb"))
    train_log: list[dict] = []
    evals: list[dict] = []
    start, next_eval = time.perf_counter(), done_steps + job.eval_every

    def evaluate(steps: int) -> None:
        nonlocal best_score
        policy = PPOPolicy(learner.model, meta)
        stats = evaluate_ppo(task, policy, job.eval_episodes, job.eval_envs, eval_seed, device)
        learner.model.train()
        summary = stats.summary()
        if key not in summary:
            raise ConfigError(f"select={job.select!r}: the evaluation reports {sorted(summary)}")
        evals.append({"env_steps": steps, **summary})
        for k, v in summary.items():
            if k != "episodes":
                tb.add_scalar(f"eval/{k}", v, steps)
        value = summary[key]
        score = sign * value if value == value else -math.inf  # NaN (e.g. no lap) is worst
        best = max(score, best_score)
        info = meta | {"env_steps": steps, "eval": summary}
        info["best_score"] = best if math.isfinite(best) else None  # strict JSON
        save_ppo(out / "checkpoints" / "last", learner, info)
        if score > best_score:
            best_score = score
            save_ppo(out / "checkpoints" / "best", learner, info)
        extra = "".join(
            f", {k.removeprefix('mean_')} {v:.3g}"
            for k, v in summary.items()
            if k.startswith("mean_") and k not in ("mean_return", "mean_length")
        )
        console.print(
            f"env steps {steps}: eval return {summary['mean_return']:.3g}, success "
            f"{summary['success_rate']:.1%}, length {summary['mean_length']:.0f}{extra} "
            f"({time.perf_counter() - start:.0f} s)"
        )

    try:
        with progress_bar("info") as bar:
            bar_job = bar.add_task("PPO", total=cfg.env_steps, completed=done_steps, info="")

            def on_iteration(steps: int, scalars: dict[str, float]) -> bool:
                nonlocal next_eval
                train_log.append({"env_steps": steps, **scalars})
                for k, v in scalars.items():
                    group = "" if "/" in k else ("perf/" if k in _PERF else "train/")
                    tb.add_scalar(group + k, v, steps)
                ret = scalars.get("episode/return")
                text = f"return {ret:.3g}, " if ret is not None else ""
                bar.update(bar_job, completed=steps, info=f"{text}{scalars['fps']:.0f} steps/s")
                out_of_time = (
                    job.max_minutes is not None
                    and time.perf_counter() - start >= 60.0 * job.max_minutes
                )
                if steps >= next_eval or steps >= cfg.env_steps or out_of_time:
                    next_eval = steps + job.eval_every
                    evaluate(steps)
                if out_of_time:
                    console.print(f"time budget of {job.max_minutes:g} min spent at {steps} steps")
                return out_of_time

            if done_steps >= cfg.env_steps:
                evaluate(done_steps)
            else:
                seed = job.seed + done_steps  # a resumed run does not replay the same episodes
                train_ppo(env, learner, seed=seed, env_steps_done=done_steps,
                          on_iteration=on_iteration)  # fmt: skip
    finally:
        tb.close()
        env.close()
    best = max(evals, key=lambda e: sign * e[key] if e[key] == e[key] else -math.inf)
    fps = [t["fps"] for t in train_log]
    summary = {
        "task": task.name,
        "select": job.select,
        "num_envs": job.num_envs,
        "steps_per_env": steps_per_env,
        "minibatches": minibatches,
        "env_steps": evals[-1]["env_steps"],
        "final": evals[-1],
        "best": best,
        "mean_fps": sum(fps) / len(fps) if fps else None,
        "wall_seconds": time.perf_counter() - start,
        "evaluations": evals,
        "training": train_log,
    }
    (out / "ppo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_learning_curve(train_log, evals, job.select, out)
    console.print(
        f"{task.name}: eval return {evals[-1]['mean_return']:.3g}, success "
        f"{evals[-1]['success_rate']:.1%} after {summary['env_steps']} env steps "
        f"({summary['wall_seconds']:.0f} s); best {job.select} {best[key]:.3g} → {out}"
    )
    return summary


_PERF = ("fps", "collect_s", "update_s", "steps_per_env", "minibatches")


def _resume(
    learner: PPO, directory: Path, dims: dict[str, int], action_dim: int
) -> tuple[int, float]:
    """Load weights, statistics, optimizer and lr from ``directory`` into ``learner``; returns
    ``(env steps done, best score so far)``."""
    directory = recover_checkpoint(directory)
    meta, tensors = read_ppo_checkpoint(directory)
    if meta.get("obs_dims") != dims or meta.get("action_dim") != action_dim:
        raise ConfigError(
            f"resume={directory}: trained on observations {meta.get('obs_dims')} / "
            f"{meta.get('action_dim')} actions, this env has {dims} / {action_dim}"
        )
    try:
        learner.model.load_state_dict(tensors)
    except RuntimeError as e:
        msg = str(e).splitlines()[0]
        raise ConfigError(f"resume={directory}: the networks differ from algo: {msg}") from None
    trainer, optim = read_trainer(directory)
    load_optimizer(learner.optim, optim, trainer["param_groups"], directory)
    learner.set_lr(float(trainer.get("lr", learner.lr)))
    best = meta.get("best_score")
    return int(meta.get("env_steps", 0)), -math.inf if best is None else float(best)
