"""The job behind ``robot-rl train residual base=<checkpoint>``: a frozen BC policy, a residual
actor-critic trained in N parallel envs, base vs base+residual evaluated on the same seeds."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from safetensors.torch import save_file

from robot_rl.algos.bc_jobs import eval_task_configs, resolve_device
from robot_rl.algos.chunk_runner import ChunkRunner
from robot_rl.algos.report import plot_residual
from robot_rl.algos.residual import (
    BaseController,
    ResidualConfig,
    ResidualLearner,
    collect_and_learn,
    online_buffer,
)
from robot_rl.algos.residual_demos import demo_buffer
from robot_rl.algos.rollout import RolloutStats, rollout
from robot_rl.algos.safety_sim import attach_safety
from robot_rl.algos.train_state import (
    TRAINER_FILE,
    read_files,
    recover_checkpoint,
    refuse_changed_settings,
    strip_prefix,
    to_cpu,
    write_checkpoint,
)
from robot_rl.core.errors import ConfigError
from robot_rl.core.progress import progress_bar
from robot_rl.data import LeRobotDataset
from robot_rl.data.replay import ReplayBuffer
from robot_rl.envs import make
from robot_rl.envs.config import TaskConfig, build_config
from robot_rl.envs.task_env import TaskEnv
from robot_rl.envs.vec_env import Obs
from robot_rl.policies import CheckpointError, Policy, load
from robot_rl.policies.policy import check_noise_scale


def base_runner(
    policy: Policy, env: TaskEnv, noise_scale: float = 1.0, action_steps: int | None = None
) -> ChunkRunner:
    """The frozen base policy run receding-horizon in ``env``, its sampling noise scaled by
    ``noise_scale`` (0: a deterministic flow base), replanning every ``action_steps`` steps
    (default: the checkpoint's)."""
    return ChunkRunner.for_env(policy, env, noise_scale=noise_scale, action_steps=action_steps)


class ResidualController:
    """Base + residual without exploration: what evaluation and deployment run."""

    def __init__(self, base: BaseController, learner: ResidualLearner) -> None:
        self.base, self.learner = base, learner

    def __call__(self, obs: Obs) -> torch.Tensor:
        base_action = self.base(obs).to(self.learner.device).clamp(-1.0, 1.0)
        return self.learner.act(obs["state"], base_action, 0.0)

    def reset(self, ids: torch.Tensor) -> None:
        self.base.reset(ids)


def evaluate_controller(
    task: TaskConfig,
    make_controller: Callable[[TaskEnv], BaseController],
    episodes: int,
    num_envs: int,
    seed: int,
    safety: dict[str, Any] | None = None,
) -> RolloutStats:
    """``episodes`` episodes of a controller built for a fresh env (same seed ⇒ same episodes),
    with the safety chain in the loop when ``safety`` is given."""
    env = make(task, min(num_envs, episodes), seed=seed)
    if safety:
        attach_safety(env, safety)
    try:
        ctrl = make_controller(env)
        return rollout(env, ctrl, episodes, seed=seed, on_reset=ctrl.reset)
    finally:
        env.close()


@dataclass
class TrainResidualJob:
    """``robot-rl train residual`` (``configs/train_residual.yaml``)."""

    task: dict[str, Any] = field(default_factory=dict)
    algo: dict[str, Any] = field(default_factory=dict)
    base: str | None = None  # BC policy checkpoint directory (frozen)
    demos: str | None = None  # demonstration dataset (e.g. the base's BC data); None: online only
    out: str | None = None  # default runs/residual_<task>
    num_envs: int = 16
    eval_every: int = 20_000  # env steps between evaluations
    eval_episodes: int = 100
    eval_envs: int = 50
    seed: int = 0
    device: str = "auto"
    # safety=<name>: configs/safety/<name>.yaml filters every command of the training and the
    # evaluation envs (the deployment chain in the loop); interventions go to TensorBoard
    safety: dict[str, Any] | None = None
    # the evaluation summary entry the best checkpoint maximizes ("-name" minimizes), e.g.
    # mean_laps_per_minute on rccar_race (laps completed per minute, 0 for a crash)
    select: str = "success_rate"
    # multiplies the base's sampling noise in training, evaluation and the demonstrations'
    # relabeling; 0: a deterministic flow base
    base_noise_scale: float = 1.0
    # at the end, base and checkpoints/best on this many fresh episodes (best was selected on the
    # evaluation episodes, so its score there flatters it); 0: skip
    heldout_episodes: int = 200
    # a run's checkpoints/last folder: continue it (networks, optimizers, online buffer,
    # evaluation history) up to algo.env_steps, with the same base, algo and num_envs
    resume: str | None = None

    def __post_init__(self) -> None:
        if self.heldout_episodes < 0:
            raise ConfigError(f"heldout_episodes must be >= 0, got {self.heldout_episodes}")
        for key in ("num_envs", "eval_every", "eval_episodes", "eval_envs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        check_noise_scale(self.base_noise_scale, "base_noise_scale")


_NETS = ("actor", "critic", "actor_target", "critic_target")
TRAINER_TENSORS, TRAINER_JSON = "trainer.safetensors", TRAINER_FILE


def save_residual(
    directory: Path,
    learner: ResidualLearner,
    meta: dict[str, Any],
    replay: ReplayBuffer | None = None,
) -> None:
    """``config.json`` (algo settings, base checkpoint, counters) + ``residual.safetensors``
    (actor, critic, their targets, the observation standardization). With the online
    ``replay`` buffer, also what ``resume=`` continues from: ``trainer.safetensors`` (optimizer
    moments, random stream, the buffer) and ``trainer.json``."""

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        tensors = {
            f"{name}.{k}": v
            for name in _NETS
            for k, v in getattr(learner, name).state_dict().items()
        }
        tensors |= {"obs_mean": learner.obs_mean, "obs_std": learner.obs_std}
        save_file(to_cpu(tensors), str(tmp / "residual.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        if replay is not None:
            state, trainer = learner.trainer_state()
            state |= {f"replay.{k}": v for k, v in replay.state_tensors().items()}
            trainer |= {"replay_head": replay.head, "replay_rows": replay.rows}
            save_file(to_cpu(state), str(tmp / TRAINER_TENSORS), metadata={"format": "pt"})
            (tmp / TRAINER_JSON).write_text(json.dumps(trainer, indent=2) + "\n")

    write_checkpoint(directory, write)


def _metrics_text(stats: RolloutStats) -> str:
    """The task's own evaluation metrics (e.g. lap time, crashes), for the console."""
    extra = {k: v for k, v in stats.summary().items() if k.startswith("mean_")}
    extra.pop("mean_return", None)
    return "".join(f", {k.removeprefix('mean_')} {v:.3g}" for k, v in extra.items())


def load_residual(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[ResidualLearner, dict[str, Any]]:
    """A residual checkpoint (:func:`save_residual`): the learner, ready to ``act``, and its
    ``config.json`` (``base`` names the base policy checkpoint it was trained on). No pickle:
    tensors from safetensors, settings from JSON; a missing or damaged file is a one-line
    :class:`ConfigError`."""
    directory = Path(directory)
    meta, tensors = read_files(
        directory,
        ("config.json", "residual.safetensors"),
        f"{directory} is not a residual checkpoint: {{}} is missing (a run writes "
        "checkpoints/best only when an evaluation beat the base; checkpoints/last always)",
        f"residual checkpoint {directory} is unreadable",
    )
    cfg = build_config(ResidualConfig, meta.get("algo", {}), where=f"{directory}/config.json")
    try:
        obs_dim = tensors["obs_mean"].shape[-1]
        action_dim = tensors["actor.net.0.weight"].shape[1] - obs_dim  # input: state ⊕ base action
        learner = ResidualLearner(obs_dim, action_dim, cfg, device)
        _load_weights(learner, tensors)
    except (KeyError, RuntimeError) as e:
        msg = str(e).splitlines()[0]
        raise ConfigError(
            f"residual checkpoint {directory} does not match its config: {msg}"
        ) from None
    return learner, meta


def _load_weights(learner: ResidualLearner, tensors: dict[str, torch.Tensor]) -> None:
    for name in _NETS:
        part = strip_prefix(tensors, name + ".")
        getattr(learner, name).load_state_dict(part)
    learner.obs_mean = tensors["obs_mean"].to(learner.device)
    learner.obs_std = tensors["obs_std"].to(learner.device)
    learner.normalizer_fitted = True


def _settings_differ(saved: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``wanted`` (a run's config.json entries) that ``saved`` has otherwise,
    by name, with the saved value; ``algo.env_steps`` may grow, and an algo field the saved run
    predates counts as its default."""

    def plain(d: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(d))  # tuples become lists, as in the saved file

    saved, wanted = plain(saved), plain(wanted)
    # a field added after the run was saved reads as its default (what the run trained with)
    run_algo = plain(asdict(ResidualConfig())) | saved.get("algo", {})
    differ = {
        f"algo.{k}": run_algo.get(k)
        for k, v in wanted.get("algo", {}).items()
        if k != "env_steps" and run_algo.get(k) != v
    }
    return differ | {
        k: saved.get(k) for k, v in wanted.items() if k != "algo" and saved.get(k) != v
    }


def resume_residual(
    directory: Path, learner: ResidualLearner, replay: ReplayBuffer, settings: dict[str, Any]
) -> dict[str, Any]:
    """Load a run's ``checkpoints/last`` (networks, optimizers, random stream, online buffer)
    into ``learner`` and ``replay``, built from this job's config; returns its config.json
    (``steps`` done, evaluation ``history``). ``settings`` are this job's config.json entries
    (base, task, algo, ...): any that differ from the run's (except a larger
    ``algo.env_steps``), a buffer of another shape (num_envs) or a damaged file is a one-line
    ConfigError."""
    directory = recover_checkpoint(Path(directory))
    where = f"resume={directory}"
    meta, weights, trainer, state = read_files(
        directory,
        ("config.json", "residual.safetensors", TRAINER_JSON, TRAINER_TENSORS),
        f"{where}: {{}} is missing (resume= takes the checkpoints/last folder of a "
        "`robot-rl train residual` run)",
        f"{where}: unreadable checkpoint",
    )
    if "history" not in meta or "steps" not in meta:
        raise ConfigError(f"{where}: config.json lacks the run's steps and history")
    refuse_changed_settings(where, _settings_differ(meta, settings))
    try:
        _load_weights(learner, weights)
        learner.load_trainer_state(state, trainer)
        columns = strip_prefix(state, "replay.")
        replay.load_state_tensors(columns, trainer["replay_head"], trainer["replay_rows"])
    except (KeyError, RuntimeError, ValueError, CheckpointError) as e:
        msg = str(e).splitlines()[0]
        raise ConfigError(
            f"{where} does not fit this job (num_envs and device must be the run's): {msg}"
        ) from None
    return meta


def heldout_comparison(
    evaluate: Callable[[ResidualLearner | None, int, int], RolloutStats],
    best: Path,
    last: ResidualLearner | None,
    seed: int,
    job: TrainResidualJob,
    device: torch.device,
    console: Console,
) -> dict[str, Any]:
    """The base, the ``best`` checkpoint and the final residual ``last`` (None: best is the final
    one) on ``job.heldout_episodes`` fresh episodes (``seed``): best was picked on the evaluation
    episodes, so its score there is biased upward; the final one was not picked."""
    learner, _ = load_residual(best, device)
    n = job.heldout_episodes
    held = {"seed": seed, "base": evaluate(None, seed, n).summary()}
    held["best"] = evaluate(learner, seed, n).summary()
    held["last"] = held["best"] if last is None else evaluate(last, seed, n).summary()
    b, r, f = held["base"], held["best"], held["last"]
    text = f"success {b['success_rate']:.1%} → {r['success_rate']:.1%}"
    key = job.select.removeprefix("-")
    if key != "success_rate":  # and the entry best was selected on
        text += f", {key} {b[key]:.3g} → {r[key]:.3g}"
    if last is None:
        text += " (best is the final residual)"
    else:
        text += f"; the final residual: success {f['success_rate']:.1%}"
        text += f", {key} {f[key]:.3g}" if key != "success_rate" else ""
    console.print(f"held out ({n} fresh episodes), base → best base+residual: {text}")
    return held


def base_noise_scale(explicit: float | None, meta: dict[str, Any] | None) -> float:
    """The base's sampling-noise scale for evaluating a residual checkpoint: ``explicit`` when
    given, else the scale the checkpoint (config ``meta``) was trained with, else 1 (no
    checkpoint, or one from before the scale was recorded)."""
    value = explicit if explicit is not None else (meta or {}).get("base_noise_scale", 1.0)
    return check_noise_scale(value, "noise_scale")


def run_train_residual(job: TrainResidualJob, console: Console | None = None) -> dict[str, Any]:
    """Evaluate the base, train the residual with periodic evaluation; returns the summary."""
    from torch.utils.tensorboard import SummaryWriter

    console = console or Console()
    cfg = build_config(ResidualConfig, job.algo, where="algo")
    if not job.base:
        raise ConfigError("train residual needs base=DIR (a BC policy checkpoint)")
    device = resolve_device(job.device)
    policy = load(job.base, device=device)
    (task,) = eval_task_configs(policy, job.task, [job.task.get("name") or policy.config.task])
    out = Path(job.out or f"runs/residual_{task.name}")
    if job.resume:  # a run continues in its own folder, where its best checkpoint is
        run = Path(job.resume).resolve().parent.parent
        if job.out and out.resolve() != run:
            raise ConfigError(
                f"resume={job.resume} continues the run in {run}: drop out= or pass out={run}"
            )
        out = run
    out.mkdir(parents=True, exist_ok=True)
    env = make(task, job.num_envs, seed=job.seed)
    sim = attach_safety(env, job.safety) if job.safety else None
    learner = ResidualLearner(
        env.observation_spec["state"].shape[0], env.action_dim, cfg, device, job.seed
    )
    eval_seed = job.seed + 10_000
    demos = None
    if job.demos:
        demos = demo_buffer(
            LeRobotDataset(job.demos),
            policy,
            cfg,
            device=device,
            noise_scale=job.base_noise_scale,
        )
        console.print(f"demonstrations: {len(demos)} transitions from {job.demos}, relabeled")

    def evaluate(
        residual: ResidualLearner | None, seed: int = eval_seed, episodes: int = job.eval_episodes
    ) -> RolloutStats:
        def build(e: TaskEnv):
            runner = base_runner(policy, e, job.base_noise_scale)
            # the base alone: the env clips its actions to the action range
            return runner if residual is None else ResidualController(runner, residual)

        return evaluate_controller(task, build, episodes, job.eval_envs, seed, job.safety)

    meta = {
        "base": str(Path(job.base).resolve()),
        "task": task.name,
        "algo": asdict(cfg),
        "safety": job.safety,
        "base_noise_scale": job.base_noise_scale,
        "seed": job.seed,
        "eval_episodes": job.eval_episodes,
    }
    replay = online_buffer(env, cfg, device)
    history: list[dict[str, Any]] = []
    done_steps, earlier_seconds = 0, 0.0
    if job.resume:
        resumed = resume_residual(Path(job.resume), learner, replay, meta)
        history, done_steps = resumed["history"], int(resumed["steps"])
        earlier_seconds = float(resumed.get("wall_seconds", 0.0))
        console.print(
            f"resumed {job.resume} at {done_steps} env steps; base success "
            f"{history[0]['success']:.1%}, latest {history[-1]['success']:.1%}"
        )
    else:
        base_stats = evaluate(None)
        console.print(
            f"base {job.base}: success {base_stats.success_rate:.1%} on {job.eval_episodes} "
            "episodes" + _metrics_text(base_stats)
        )
    key, sign = job.select.removeprefix("-"), (-1.0 if job.select.startswith("-") else 1.0)
    reported = history[0] if history else base_stats.summary()
    if key not in reported:
        raise ConfigError(f"select={job.select!r}: the evaluation reports {sorted(reported)}")

    def score(entry: dict[str, Any]) -> float:
        value = entry[key]
        return sign * value if value == value else -math.inf  # NaN (e.g. no lap) is worst

    tb = SummaryWriter(log_dir=str(out / "tb"))

    def log_eval(steps: int, stats: RolloutStats) -> None:
        history.append({"env_steps": steps, "success": stats.success_rate, **stats.summary()})
        for k, v in stats.summary().items():
            if k != "episodes":
                tb.add_scalar(f"eval/{k}", v, steps)

    if not job.resume:
        log_eval(0, base_stats)  # the curves start at the frozen base
    # the next multiple of eval_every: a resumed run evaluates where an unbroken one would
    start, next_eval = time.perf_counter(), (done_steps // job.eval_every + 1) * job.eval_every
    try:
        with progress_bar("info") as bar:
            bar_job = bar.add_task(
                "residual RL", total=cfg.env_steps, completed=done_steps, info=""
            )

            def on_step(steps: int, info: dict[str, Any]) -> None:
                nonlocal next_eval
                for k, v in info["scalars"].items():
                    tb.add_scalar(f"train/{k}", v, steps)
                if steps >= next_eval or steps >= cfg.env_steps:
                    next_eval += job.eval_every
                    stats = evaluate(learner)
                    log_eval(steps, stats)
                    if sim is not None:  # the chain on the training envs since the start
                        for k, v in sim.summary().items():
                            tb.add_scalar(k, v, steps)
                    info = meta | {"steps": steps, "success": stats.success_rate}
                    if score(history[-1]) > max(score(h) for h in history[:-1]):
                        # better than the base and every earlier evaluation (same episodes);
                        # before last, whose history a resumed run takes as done
                        save_residual(out / "checkpoints" / "best", learner, info)
                    wall = earlier_seconds + time.perf_counter() - start
                    resumable = info | {"history": history, "wall_seconds": wall}
                    save_residual(out / "checkpoints" / "last", learner, resumable, replay)
                    bar.update(bar_job, info=f"success {stats.success_rate:.0%}")
                    console.print(
                        f"env steps {steps}: base+residual success {stats.success_rate:.1%}"
                        f"{_metrics_text(stats)} ({time.perf_counter() - start:.0f} s)"
                    )
                bar.update(bar_job, completed=steps)

            base = base_runner(policy, env, job.base_noise_scale)
            collect_and_learn(
                env,
                base,
                cfg,
                learner,
                seed=job.seed,
                demos=demos,
                on_step=on_step,
                buffer=replay,
                start_steps=done_steps,
            )
    finally:
        tb.close()
        env.close()
    best = max(history[1:] or history, key=score)
    summary = {
        "select": job.select,
        "base": history[0],
        "best": best,
        "base_success": history[0]["success"],
        "final_success": history[-1]["success"],
        "best_success": best["success"],
        "best_env_steps": best["env_steps"],
        "episodes": job.eval_episodes,
        "history": history,
        "env_steps": cfg.env_steps,
        "wall_seconds": earlier_seconds + time.perf_counter() - start,
    }
    plot_residual(history, history[0]["success"], out)
    summary_file = out / "residual_summary.json"
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    # this run wrote checkpoints/best iff an evaluation beat the base (the folder may still hold
    # an older run's best otherwise); the summary above survives an interruption here
    if job.heldout_episodes and score(best) > score(history[0]):
        last = None if best is history[-1] else learner
        summary["heldout"] = heldout_comparison(
            evaluate, out / "checkpoints" / "best", last, eval_seed + 10_000, job, device, console
        )
        summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    console.print(
        f"base {summary['base_success']:.1%} → base+residual {summary['final_success']:.1%} "
        f"after {cfg.env_steps} env steps ({summary['wall_seconds']:.0f} s)"
    )
    return summary
