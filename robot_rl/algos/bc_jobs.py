"""The jobs behind ``robot-rl train bc`` and ``robot-rl eval``: typed configs and their runs.

The CLI only composes Hydra configs into these dataclasses and calls :func:`run_train_bc` /
:func:`run_eval`; the pipeline (``algos/pipeline.py``) chains them after collection.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from robot_rl.algos.bc import BCConfig, TrainRun, build_policy, dataset_roots, train_bc
from robot_rl.algos.bc_data import BCData
from robot_rl.algos.evaluate import EvalResult, evaluate_policy
from robot_rl.algos.report import plot_training, sweep_table, write_eval_report
from robot_rl.algos.safety_sim import attach_safety
from robot_rl.algos.sweep import SWEEPS, term_values
from robot_rl.algos.train_state import recover_checkpoint
from robot_rl.core.errors import ConfigError
from robot_rl.core.progress import progress_bar
from robot_rl.envs import load_task_config, make
from robot_rl.envs.config import TaskConfig, build_config
from robot_rl.policies import Policy, load
from robot_rl.policies.policy import check_noise_scale


def resolve_device(device: str) -> str:
    """``auto`` ⇒ ``cuda`` when a GPU is visible, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but torch sees no CUDA device; use device=cpu")
    return device


def eval_task_configs(
    policy: Policy, primary: dict[str, Any] | None, names: list[str] | None
) -> list[TaskConfig]:
    """Task configs to evaluate ``policy`` in: ``names`` (default: the primary task, else the
    tasks the checkpoint was trained for), the primary one keeping its overrides; cameras the
    policy reads are switched on at the policy's image size."""
    primary = dict(primary or {})
    trained_for = [t for t in policy.config.task.split("+") if t]
    if primary and not primary.get("name"):
        if len(trained_for) != 1:
            raise ConfigError(
                f"task overrides {sorted(primary)} need a task name: pass task=<name>"
            )
        primary["name"] = trained_for[0]  # overrides of the checkpoint's own task
    if not names:
        names = [primary["name"]] if primary.get("name") else trained_for
    if not names or not all(names):
        raise ConfigError("no task to evaluate in: pass task=<name>")
    cfgs = []
    for name in names:
        overrides = {k: v for k, v in primary.items() if k != "name"}
        if primary.get("name") != name:
            overrides = {}
        pc = policy.config
        if pc.cameras:
            h, w = pc.image_size
            overrides["image"] = {
                **overrides.get("image", {}),
                "enabled": True,
                "cameras": list(pc.cameras),
                "height": h,
                "width": w,
            }
        cfgs.append(load_task_config(name, overrides))
    return cfgs


def evaluate_in_tasks(
    policy: Policy,
    tasks: Sequence[TaskConfig] | Mapping[str, TaskConfig],
    episodes: int,
    num_envs: int,
    *,
    seed: int,
    video_episodes: int = 0,
    filmed: Collection[str] | None = None,
    label: str = "eval",
    action_steps: int | None = None,
    denoise_steps: int | None = None,
    noise_scale: float = 1.0,
    safety: dict[str, Any] | str | None = None,
    wrap=None,
) -> dict[str, EvalResult]:
    """Evaluate ``policy`` for ``episodes`` episodes in each task, with a progress bar; results
    are keyed by task name, or by the keys of ``tasks`` given as a mapping (e.g. one task under
    several settings). ``filmed`` names the tasks filmed (default: all); with ``safety`` (a
    safety config or the name of one) the chain filters every command; ``wrap`` as
    :func:`evaluate_policy` takes it."""
    named = dict(tasks) if isinstance(tasks, Mapping) else {cfg.name: cfg for cfg in tasks}
    results = {}
    with progress_bar() as bar:
        for name, cfg in named.items():
            env = make(cfg, min(num_envs, episodes), seed=seed)
            sim = attach_safety(env, safety) if safety else None
            job = bar.add_task(f"{label} {name}", total=episodes)
            try:
                results[name] = evaluate_policy(
                    policy,
                    env,
                    episodes,
                    seed=seed,
                    video_episodes=video_episodes if filmed is None or name in filmed else 0,
                    action_steps=action_steps,
                    denoise_steps=denoise_steps,
                    noise_scale=noise_scale,
                    progress=lambda k, job=job: bar.update(job, completed=k),
                    wrap=wrap,
                )
                if sim is not None:
                    results[name].safety = sim.summary()
            finally:
                env.close()
    return results


def check_data_matches_tasks(data: BCData, tasks: list[TaskConfig]) -> None:
    """Refuse to train on demonstrations of another task (all arm tasks share their shapes, so
    nothing else would notice): every evaluated task's instruction must be in the data, at the
    task's control rate."""
    for cfg in tasks:
        if cfg.instruction not in data.instructions:
            raise ConfigError(
                f"task {cfg.name!r} ({cfg.instruction!r}) has no demonstrations in the dataset, "
                f"whose instructions are {data.instructions}; pass the dataset's task=<name> "
                f"(or eval_tasks=[...] for several)"
            )
        fps = _fps(cfg)
        for ds in data.datasets:
            if ds.fps != fps:
                raise ConfigError(
                    f"{ds.root} was recorded at {ds.fps} fps, task {cfg.name!r} runs at {fps} Hz"
                )


def _fps(task: TaskConfig) -> int:
    env = make(task, 1, seed=0)
    try:
        return round(1.0 / env.control_dt)
    finally:
        env.close()


# ---------------------------------------------------------------------------------- train bc


@dataclass
class TrainBCJob:
    """``robot-rl train bc`` (``configs/train_bc.yaml``)."""

    task: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    algo: dict[str, Any] = field(default_factory=dict)
    dataset: Any = None  # DIR or [DIR, ...]
    out: str | None = None  # default runs/bc_<task>_<policy>
    eval_tasks: list[str] | None = None
    eval_every: int = 1000
    eval_episodes: int = 50
    eval_envs: int = 50
    save_every: int = 1000
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    resume: str | None = None
    cameras: list[str] | None = None
    state: list[str] | None = None  # state entries to keep (fnmatch patterns); None = all
    language: bool | None = None

    def __post_init__(self) -> None:
        for key in ("eval_every", "save_every"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("eval_episodes", "eval_envs", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")


def run_train_bc(job: TrainBCJob, console: Console | None = None) -> dict[str, Any]:
    """Build data and policy, train with periodic evaluation; returns the train summary."""
    console = console or Console()
    algo = build_config(BCConfig, job.algo, where="algo")
    device = resolve_device(job.device)
    task_name = job.task.get("name", "")
    eval_names = list(job.eval_tasks or [task_name])
    policy_name = job.policy.get("name")
    out = Path(job.out or f"runs/bc_{'+'.join(eval_names)}_{policy_name}")
    pcfg = {k: v for k, v in job.policy.items()}
    data = BCData(
        dataset_roots(job.dataset),
        int(pcfg.get("obs_horizon", 2)),
        int(pcfg.get("horizon", 16)),
        cameras=job.cameras,
        state=job.state,
    )
    policy = build_policy(pcfg, data, "+".join(eval_names), language=job.language)
    tasks = eval_task_configs(policy, job.task, eval_names)
    check_data_matches_tasks(data, tasks)
    resume = Path(job.resume) if job.resume else None
    n_params = sum(p.numel() for p in policy.trainable_parameters()) / 1e6
    console.print(
        f"training [bold]{policy.name}[/] ({n_params:.1f}M params, {policy.config.head} head"
        f"{', cameras ' + str(list(data.cameras)) if data.cameras else ''}"
        f"{', language' if policy.config.uses_text else ''}) on {data.num_episodes} episodes / "
        f"{len(data)} windows for {algo.steps} steps on {device} → {out}"
    )

    def evaluate(p: Policy) -> dict[str, EvalResult]:
        results = evaluate_in_tasks(
            p, tasks, job.eval_episodes, job.eval_envs, seed=job.seed + 10_000, label="  eval"
        )
        for name, r in results.items():
            s = r.stats.summary()
            console.print(
                f"  eval {name}: success {s['success_rate']:.1%} "
                f"(95% CI {s['success_ci95_low']:.1%}–{s['success_ci95_high']:.1%})"
            )
        return results

    run = TrainRun(out, job.eval_every, job.save_every, job.log_every, job.seed, device)
    with progress_bar("loss") as bar:
        bar_job = bar.add_task("train", total=algo.steps, loss="")

        def progress(step: int, scalars: dict[str, float]) -> None:
            bar.update(bar_job, completed=step, loss=f"loss {scalars['loss']:.4f}")

        summary = train_bc(
            policy, data, algo, run, evaluate=evaluate, resume=resume, progress=progress
        )
    plot_training(summary, out)
    console.print(
        f"done: best eval success {summary['best_success']:.1%}; checkpoint "
        f"{summary['checkpoint']} (evaluate: robot-rl eval checkpoint={summary['checkpoint']})"
    )
    return summary


# ---------------------------------------------------------------------------------- eval


@dataclass
class EvalJob:
    """``robot-rl eval`` (``configs/eval.yaml``)."""

    checkpoint: str | None = None
    # a residual checkpoint (robot-rl train residual): evaluate base + residual; the base is
    # `checkpoint`, default the one the residual was trained on
    residual: str | None = None
    task: dict[str, Any] | None = None
    tasks: list[str] | None = None  # default: the checkpoint's task(s)
    episodes: int = 200
    num_envs: int = 50
    seed: int = 0
    out: str | None = None  # default <run>/eval next to <run>/checkpoints
    video_episodes: int = 4
    action_steps: int | None = None  # override the policy's Ta
    denoise_steps: int | None = None  # override the sampler's steps
    # multiplies the sampling noise; 0: a deterministic flow policy. null: the scale the residual
    # was trained with (its base_noise_scale) when residual= is given, else 1
    noise_scale: float | None = None
    # safety=<name>: configs/safety/<name>.yaml filters every command; the report gains the
    # interventions per filter and the hard-limit violations per 1000 steps
    safety: dict[str, Any] | None = None
    # sweep=randomization: the task under each domain-randomization setting (robot_rl.algos.sweep)
    sweep: str | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.sweep is not None and self.sweep not in SWEEPS:
            raise ConfigError(f"sweep must be one of {list(SWEEPS)} or null, got {self.sweep!r}")
        if self.episodes < 1 or self.num_envs < 1:
            raise ConfigError(
                f"episodes and num_envs must be >= 1, got {self.episodes}, {self.num_envs}"
            )
        if self.video_episodes < 0:
            raise ConfigError(f"video_episodes must be >= 0, got {self.video_episodes}")
        for key in ("action_steps", "denoise_steps"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"{key} must be >= 1 (or null for the policy's), got {v}")
        if self.noise_scale is not None:
            check_noise_scale(self.noise_scale)


COMMON = {"mean_length", "mean_return"}
"""Summary entries every task reports; the others are a task's own metrics."""


def default_eval_dir(checkpoint: Path) -> Path:
    """``runs/x/checkpoints/last`` ⇒ ``runs/x/eval``; any other checkpoint ⇒ ``<it>_eval``."""
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent / "eval"
    return checkpoint.with_name(checkpoint.name + "_eval")


def run_eval(job: EvalJob, console: Console | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint; writes ``report.json``, plots and videos; returns the report."""
    console = console or Console()
    device = resolve_device(job.device)
    # (imported here: residual_job builds on this module)
    from robot_rl.algos.residual_job import ResidualController, base_noise_scale, load_residual

    wrap, residual_meta = None, None
    if job.residual:
        learner, residual_meta = load_residual(job.residual, device)

        def wrap(runner):
            return ResidualController(runner, learner)

    noise_scale = base_noise_scale(job.noise_scale, residual_meta)
    base = job.checkpoint or (residual_meta or {}).get("base")
    if not base:
        raise ConfigError("eval needs checkpoint=DIR (a policy checkpoint directory)")
    ckpt = recover_checkpoint(Path(base))
    policy = load(ckpt, device=device)
    tasks = eval_task_configs(policy, job.task, job.tasks)
    named: dict[str, TaskConfig] = {cfg.name: cfg for cfg in tasks}
    sweep_meta = None
    if job.sweep:
        if len(tasks) != 1:
            raise ConfigError(
                f"sweep={job.sweep} evaluates one task, got tasks={[t.name for t in tasks]}"
            )
        # every setting runs with the same seed: the same episodes, only the terms differ
        named = SWEEPS[job.sweep](tasks[0])
        sweep_meta = {"name": job.sweep, "task": tasks[0].name, "terms": term_values(tasks[0])}
    if job.out:
        out = Path(job.out)
    else:
        out = default_eval_dir(Path(job.residual) if job.residual else ckpt)
    results = evaluate_in_tasks(
        policy,
        named,
        job.episodes,
        job.num_envs,
        seed=job.seed,
        video_episodes=job.video_episodes,
        filmed=["all"] if job.sweep else None,  # one video is enough to look at
        action_steps=job.action_steps,
        denoise_steps=job.denoise_steps,
        noise_scale=noise_scale,
        safety=job.safety,
        wrap=wrap,
    )
    meta = {
        "checkpoint": str(ckpt),
        "residual": job.residual,
        "policy": policy.name,
        "head": policy.config.head,
        "episodes": job.episodes,
        "seed": job.seed,
        "action_steps": job.action_steps or policy.config.action_steps,
        "denoise_steps": job.denoise_steps,
        "noise_scale": noise_scale,
        "safety": job.safety,
        "sweep": sweep_meta,
    }
    report = write_eval_report(results, out, fps=_fps(tasks[0]), meta=meta)
    if job.sweep:
        console.print(sweep_table(results, title=f"{tasks[0].name} under sweep={job.sweep}"))
    for name, r in results.items():
        if not job.sweep:
            _print_result(console, name, r)
        if r.safety:
            # after each task's line, or below the sweep's table naming the setting
            _print_safety(console, f"{name} " if job.sweep else "", r.safety)
    console.print(f"report: {out / 'report.json'}")
    print(json.dumps({"summary": {n: t["summary"] for n, t in report["tasks"].items()}}))
    return report


def _print_result(console: Console, name: str, r: EvalResult) -> None:
    s = r.stats.summary()
    console.print(
        f"[bold]{name}[/]: success {s['success_rate']:.1%} (95% CI "
        f"{s['success_ci95_low']:.1%}–{s['success_ci95_high']:.1%}) over {s['episodes']} "
        f"episodes, mean length {s['mean_length']:.1f}, mean return {s['mean_return']:.2f}"
    )
    task_metrics = {k: v for k, v in s.items() if k.startswith("mean_") and k not in COMMON}
    if task_metrics:
        console.print(
            "  " + ", ".join(f"{k.removeprefix('mean_')} {v:.3g}" for k, v in task_metrics.items())
        )


def _print_safety(console: Console, label: str, safety: dict[str, float]) -> None:
    rates = {k.split("/")[1]: v for k, v in safety.items() if k.endswith("/rate")}
    busiest = max(rates, key=rates.get) if rates else "-"
    console.print(
        f"  {label}safety chain: violations per 1000 steps "
        + ", ".join(
            f"{k.removeprefix('violations/')} {v:.2f}"
            for k, v in safety.items()
            if k.startswith("violations/")
        )
        + f"; most active filter {busiest} ({rates.get(busiest, 0):.0%} of steps)"
    )
