"""Train and evaluate the reflex critic (``robot_rl.safety.reflex``) in the simulated arm.

Data: rollouts of three kinds of behaviour, one per env and episode, in the *unfiltered* arm —
the task's scripted expert with noise (safe, on task), uniform random actions, and deliberately
unsafe "divers" that steer the tool toward a random point past the workspace box, into the
keep-out fixture or down into the table, or twist a wrist joint into its limit. Each tick records
the measured joints, the joint command the arm is about to receive and whether the state after
the step crosses a hard limit (joint limits, workspace box, keep-out regions; joint *speed* is not
a reflex's job: the rate limiter bounds it exactly).

Training: a twin critic, cross-entropy toward the pessimistic target
``y = c + (1 - c) · gamma · max(Q1', Q2')(s', a')`` with the recorded next command
``a'`` (SARSA: the risk under the behaviour that generated the data), terminal at a violation;
the last step of an episode that ends without a violation is left out (nothing to bootstrap from).

Evaluation on held-out rollouts, per violation *event* (the first step of a run of violating
steps, runs less than 10 safe steps apart merged): recall = events with an alarm 3..H steps
before them; precision = alarms followed by an
event within H steps (or raised while violating); lead time = steps from the first alarm in the
window to the event.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from robot_rl.algos.safety_sim import ViolationMeter
from robot_rl.algos.train_state import write_checkpoint
from robot_rl.core.errors import ConfigError
from robot_rl.core.progress import progress_bar
from robot_rl.envs import load_task_config, make
from robot_rl.envs.config import TaskConfig
from robot_rl.envs.experts import make_expert
from robot_rl.envs.tasks.arm.base import ArmEnv
from robot_rl.safety import SafetyConfig
from robot_rl.safety.reflex import ReflexCritic, risk_features

BEHAVIOURS = ("expert", "random", "diver")
HARD = ("joint_position", "workspace", "keep_out")  # what the reflex predicts


@dataclass
class Rollouts:
    """Per-env time series, shapes ``(T, N, ...)``: features of (state, command), the violation
    after the step, and whether the step ended an episode."""

    x: np.ndarray
    cost: np.ndarray
    last: np.ndarray
    behaviour: np.ndarray  # (T, N) index into BEHAVIOURS


class Diver:
    """Unsafe on purpose: each episode steers the tool toward a random target past a hard limit
    (or spins a wrist joint into its stop), with noise."""

    def __init__(self, env: ArmEnv, cfg: SafetyConfig, seed: int) -> None:
        self.env, self.gen = env, torch.Generator().manual_seed(seed)
        ws = env.profile.workspace
        self.low = torch.tensor(ws.low, dtype=torch.float64)
        self.high = torch.tensor(ws.high, dtype=torch.float64)
        self.spheres = [
            torch.tensor(s["center"], dtype=torch.float64) for s in cfg.cbf.get("spheres", [])
        ]
        self.target = torch.zeros(env.num_envs, 3, dtype=torch.float64)
        self.twist = torch.zeros(env.num_envs, 3)
        self.reset(torch.arange(env.num_envs))

    def reset(self, ids: torch.Tensor) -> None:
        k = len(ids)
        u = torch.rand((k, 3), generator=self.gen, dtype=torch.float64)
        pick = torch.randint(0, 4, (k,), generator=self.gen)
        span = self.high - self.low
        target = self.low + u * span
        side = torch.randint(0, 3, (k,), generator=self.gen)
        out = torch.where(torch.rand(k, generator=self.gen) < 0.5, -0.15, 1.15).double()
        beyond = target.clone()
        beyond[torch.arange(k), side] = (self.low + out[:, None] * span)[torch.arange(k), side]
        down = target.clone()
        down[:, 2] = -0.1
        target = torch.where((pick == 0)[:, None], beyond, target)
        target = torch.where((pick == 1)[:, None], down, target)
        if self.spheres:
            c = self.spheres[int(torch.randint(0, len(self.spheres), (1,), generator=self.gen))]
            target = torch.where((pick == 2)[:, None], c.expand(k, 3), target)
        self.target[ids] = target
        twist = torch.zeros(k, 3)
        twist[torch.arange(k), torch.randint(0, 3, (k,), generator=self.gen)] = torch.where(
            torch.rand(k, generator=self.gen) < 0.5, -1.0, 1.0
        )
        self.twist[ids] = torch.where((pick == 3)[:, None], twist, torch.zeros(k, 3))

    def __call__(self, obs: dict) -> torch.Tensor:
        direction = self.target - self.env.tcp_pos.cpu()
        move = (direction / 0.05).clamp(-1, 1).float()
        noise = torch.randn(move.shape, generator=self.gen) * 0.2
        grip = torch.rand((len(move), 1), generator=self.gen) * 2 - 1
        return torch.cat([(move + noise).clamp(-1, 1), self.twist, grip], dim=-1)


def collect(
    task: str | TaskConfig,
    num_envs: int,
    steps: int,
    seed: int,
    cfg: SafetyConfig,
    progress: bool = True,
) -> Rollouts:
    """``steps`` vector steps of the three behaviours (env ``i`` runs ``BEHAVIOURS[i % 3]``)."""
    env = make(task, num_envs, seed=seed)
    name = task if isinstance(task, str) else task.name
    if not isinstance(env, ArmEnv):
        env.close()
        raise ConfigError(f"the reflex critic is trained on the arm tasks, not {name!r}")
    features = risk_features(env.profile, cfg)
    meter = ViolationMeter(env, cfg)
    reached: list[torch.Tensor] = []  # the violation of the state each step reached

    def observe(_env) -> None:
        kinds = meter.kinds()  # before a finished episode resets
        reached.append(torch.stack([kinds[k] for k in HARD]).any(0))

    env.step_observer = observe
    kind = torch.arange(num_envs) % len(BEHAVIOURS)
    expert = make_expert(name, env, noise=0.3, seed=seed)
    diver = Diver(env, cfg, seed)
    gen = torch.Generator().manual_seed(seed)
    commands: list[torch.Tensor] = []

    def record(_env: ArmEnv, command: torch.Tensor) -> torch.Tensor:
        commands.append(command.clone())  # what the unfiltered arm receives this step
        return command

    env.command_filter = record
    obs = env.reset(seed=seed)
    previous = env.command_joints[0].cpu().numpy()  # the last command, per env
    xs, costs, lasts = [], [], []
    violating = 0
    try:
        with progress_bar("info") if progress else contextlib.nullcontext() as bar:
            job = bar.add_task("reflex rollouts", total=steps, info="") if bar else None
            for step in range(steps):
                q, dq = (x.cpu().numpy() for x in env.command_joints)
                actions = torch.where(
                    (kind == 0)[:, None],
                    expert(obs),
                    torch.where(
                        (kind == 1)[:, None],
                        torch.rand((num_envs, 7), generator=gen) * 2 - 1,
                        diver(obs),
                    ),
                )
                obs, _, terminated, truncated, _ = env.step(actions)
                command = commands.pop().cpu().numpy()
                cost = reached.pop().numpy()
                done = (terminated | truncated).cpu().numpy()
                xs.append(features(q, dq, command, previous).astype(np.float32))
                previous = command.copy()
                costs.append(cost)
                lasts.append(done)
                violating += int(cost.sum())
                if done.any():
                    ids = np.flatnonzero(done)
                    expert.reset(torch.as_tensor(ids, device=env.device))
                    diver.reset(torch.as_tensor(ids))
                    fresh = env.command_joints[0].cpu().numpy()  # a new episode: no momentum
                    previous[ids] = fresh[ids]
                if bar:
                    share = violating / ((step + 1) * num_envs)
                    bar.update(job, advance=1, info=f"violating {share:.1%} of steps")
    finally:
        env.close()
    behaviour = np.broadcast_to(kind.numpy(), (steps, num_envs)).copy()
    return Rollouts(np.stack(xs), np.stack(costs), np.stack(lasts), behaviour)


@dataclass
class ReflexConfig:
    """``configs/algo/reflex.yaml``."""

    name: str = "reflex"
    gamma: float = 0.9  # horizon ~ 1 / (1 - gamma) ticks
    hidden: tuple[int, ...] = (512, 512)
    lr: float = 3e-4
    batch_size: int = 1024
    updates: int = 30000
    tau: float = 0.01
    # the threshold: the best recall on validation data among those with this precision
    precision_target: float = 0.8
    window: int = 20  # H: alarms up to this many steps before an event count
    min_lead: int = 3  # alarms closer than this to the event do not count for recall

    def __post_init__(self) -> None:
        if not 0 < self.gamma < 1:
            raise ConfigError(f"algo.gamma must be in (0, 1), got {self.gamma}")
        if not 0 < self.precision_target <= 1:
            raise ConfigError(
                f"algo.precision_target must be in (0, 1], got {self.precision_target}"
            )
        if not 0 <= self.min_lead < self.window:
            raise ConfigError(f"algo.min_lead must be in [0, window), got {self.min_lead}")


def train_critic(data: Rollouts, cfg: ReflexConfig, seed: int = 0, progress: bool = True):
    """Fit the twin critic on ``data``; returns it and the loss curve."""
    torch.manual_seed(seed)
    t, n, f = data.x.shape
    x = torch.from_numpy(data.x[:-1].reshape(-1, f))
    x_next = torch.from_numpy(data.x[1:].reshape(-1, f))
    cost = torch.from_numpy(data.cost[:-1].reshape(-1)).float()
    last = torch.from_numpy(data.last[:-1].reshape(-1)).float()
    # the last step of an episode without a violation cannot bootstrap (the next row is another
    # episode) and is not known to be safe: it is left out
    usable = torch.nonzero((last == 0) | (cost == 1)).flatten()
    critic = ReflexCritic(f, cfg.hidden)
    critic.mean.copy_(x.mean(0))
    critic.std.copy_(x.std(0).clamp_min(1e-3))
    target_net = copy.deepcopy(critic).requires_grad_(False)
    optim = torch.optim.Adam(critic.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    with progress_bar("info") if progress else contextlib.nullcontext() as bar:
        job = (
            bar.add_task("training the reflex critic", total=cfg.updates, info="") if bar else None
        )
        for step in range(cfg.updates):
            idx = usable[torch.randint(0, len(usable), (cfg.batch_size,), generator=gen)]
            with torch.no_grad():
                nxt = torch.sigmoid(target_net.logits(x_next[idx])).max(0).values  # pessimistic
                y = cost[idx] + (1 - cost[idx]) * cfg.gamma * nxt  # (no episode end sampled)
            logits = critic.logits(x[idx])
            loss = F.binary_cross_entropy_with_logits(logits, y.expand_as(logits))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            with torch.no_grad():
                for p, tp in zip(critic.parameters(), target_net.parameters()):
                    tp.lerp_(p, cfg.tau)
            losses.append(float(loss.detach()))
            if bar and step % 50 == 0:
                bar.update(job, completed=step + 1, info=f"loss {np.mean(losses[-50:]):.4f}")
    return critic.eval(), losses


def risks(critic: ReflexCritic, data: Rollouts) -> np.ndarray:
    """``(T, N)`` risk of every recorded (state, command)."""
    t, n, f = data.x.shape
    with torch.no_grad():
        r = critic(torch.from_numpy(data.x.reshape(-1, f)))
    return r.numpy().reshape(t, n)


def event_metrics(
    risk: np.ndarray,
    cost: np.ndarray,
    last: np.ndarray,
    threshold: float,
    window: int,
    min_lead: int,
    gap: int = 10,
) -> dict[str, float]:
    """Event-level precision, recall and lead time (see the module docstring). Shapes
    ``(T, N)``; ``cost[t]`` is the violation after step ``t``, so the event "at" ``t`` is caused
    by the command at ``t`` and an alarm at ``t`` has lead 0."""
    t_len, n = cost.shape
    alarm = risk > threshold
    caught, events, leads = 0, 0, []
    true_alarms, alarms = 0, 0
    for i in range(n):
        c, a, d = cost[:, i], alarm[:, i], last[:, i]
        start = 0
        onsets = []
        last_violation = -(10**9)
        for t in range(t_len):
            # a new event: a violation after at least `gap` safe steps of the same episode (a
            # robot flickering across a limit is one event, not one per crossing)
            if c[t] and (t == start or t - last_violation > gap):
                onsets.append(t)
            if c[t]:
                last_violation = t
            if d[t]:
                start = t + 1
                last_violation = -(10**9)
        episode_start = np.zeros(t_len, dtype=int)  # first step of each step's episode
        s = 0
        for t in range(t_len):
            episode_start[t] = s
            if d[t]:
                s = t + 1
        for t0 in onsets:
            events += 1
            lo = max(episode_start[t0], t0 - window)
            hits = np.flatnonzero(a[lo : t0 - min_lead + 1]) + lo if t0 - min_lead >= lo else []
            if len(hits):
                caught += 1
                leads.append(t0 - int(hits[0]))
        for t in np.flatnonzero(a):
            alarms += 1
            # true if the arm violates now or within the window, in the same episode
            end = t + window + 1
            cut = np.flatnonzero(d[t:end])
            if len(cut):
                end = t + cut[0] + 1
            violating_now = t > 0 and c[t - 1] and episode_start[t] < t
            true_alarms += bool(violating_now or c[t:end].any())

    return {
        "events": events,
        "recall": caught / max(events, 1),
        "precision": true_alarms / max(alarms, 1),
        "alarm_rate": alarms / max(t_len * n, 1),
        "lead_median": float(np.median(leads)) if leads else 0.0,
        "lead_p10": float(np.percentile(leads, 10)) if leads else 0.0,
    }


def pick_threshold(risk, cost, last, cfg: ReflexConfig) -> float:
    """The threshold with the best event recall among those whose precision reaches
    ``cfg.precision_target`` on ``risk`` (false alarms stop a robot for nothing, so they are
    what is bounded); the most precise one when none does."""
    best, best_key = 0.5, (-1.0, -1.0)
    for th in np.linspace(0.02, 0.9, 45):
        m = event_metrics(risk, cost, last, float(th), cfg.window, cfg.min_lead)
        ok = m["precision"] >= cfg.precision_target
        key = (m["recall"], m["precision"]) if ok else (-1.0, m["precision"])
        if key > best_key:
            best, best_key = float(th), key
    return best


def save_reflex(directory: Path, critic: ReflexCritic, meta: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        tensors = {k: v.detach().contiguous() for k, v in critic.state_dict().items()}
        save_file(tensors, str(tmp / "reflex.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")

    write_checkpoint(directory, write)


@dataclass
class TrainReflexJob:
    """``robot-rl train reflex`` (``configs/train_reflex.yaml``)."""

    task: dict[str, Any] = field(default_factory=dict)
    algo: dict[str, Any] = field(default_factory=dict)
    # safety=<name>: configs/safety/<name>.yaml (profile, keep-out regions); default arm
    safety: dict[str, Any] | None = None
    num_envs: int = 48
    steps: int = 18000  # vector steps of training rollouts (plus a fifth for validation)
    seed: int = 0
    out: str | None = None  # default runs/reflex_<task>

    def __post_init__(self) -> None:
        for key in ("num_envs", "steps"):
            if getattr(self, key) < 3:
                raise ConfigError(f"{key} must be >= 3, got {getattr(self, key)}")


def run_train_reflex(job: TrainReflexJob, console=None) -> dict[str, Any]:
    from rich.console import Console

    from robot_rl.envs.config import build_config

    console = console or Console()
    cfg = build_config(ReflexConfig, job.algo, where="algo")
    task = load_task_config(job.task.get("name") or "arm_push", job.task)
    safety = SafetyConfig.load(job.safety or "arm")
    out = Path(job.out or f"runs/reflex_{task.name}")
    train = collect(task, job.num_envs, job.steps, job.seed, safety)
    val = collect(task, job.num_envs, max(job.steps // 5, 3), job.seed + 1, safety)
    console.print(
        f"rollouts: {train.x.shape[0] * train.x.shape[1]} steps, violating {train.cost.mean():.1%}"
    )
    critic, losses = train_critic(train, cfg, job.seed)
    r = risks(critic, val)
    threshold = pick_threshold(r, val.cost, val.last, cfg)
    metrics = event_metrics(r, val.cost, val.last, threshold, cfg.window, cfg.min_lead)
    meta = {
        "task": task.name,
        "task_config": asdict(task),
        "safety": asdict(safety),
        "in_dim": int(train.x.shape[-1]),
        "hidden": list(cfg.hidden),
        "threshold": threshold,
        "algo": asdict(cfg),
        "validation": metrics,
    }
    save_reflex(out / "checkpoint", critic, meta)
    console.print(
        f"threshold {threshold:.2f} on validation: recall {metrics['recall']:.1%}, precision "
        f"{metrics['precision']:.1%}, median lead {metrics['lead_median']:.0f} steps "
        f"→ {out / 'checkpoint'}"
    )
    return meta


def plot_sweep(sweep: list[dict], threshold: float, path: Path) -> None:
    """Recall, precision and median lead time against the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    th = [m["threshold"] for m in sweep]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(th, [m["recall"] for m in sweep], label="recall (events, lead >= 3)")
    ax.plot(th, [m["precision"] for m in sweep], label="precision (alarms)")
    ax.axvline(threshold, color="gray", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_xlabel("risk threshold")
    ax.set_ylim(0, 1.02)
    lead = ax.twinx()
    lead.plot(th, [m["lead_median"] for m in sweep], color="tab:green", ls=":", label="lead")
    lead.set_ylabel("median lead (control steps)")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("reflex critic on held-out rollouts")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass
class EvalReflexJob:
    """``robot-rl eval reflex checkpoint=DIR``: held-out rollouts (a seed training never saw)."""

    checkpoint: str | None = None
    num_envs: int = 48
    steps: int = 1000
    seed: int = 1000
    threshold: float | None = None  # default: the checkpoint's
    out: str | None = None  # default <checkpoint>/../eval: reflex_eval.json and .png

    def __post_init__(self) -> None:
        for key in ("num_envs", "steps"):
            if getattr(self, key) < 3:
                raise ConfigError(f"{key} must be >= 3, got {getattr(self, key)}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")


def run_eval_reflex(job: EvalReflexJob, console=None) -> dict[str, Any]:
    from rich.console import Console

    from robot_rl.envs.config import build_config
    from robot_rl.safety.reflex import load_reflex

    console = console or Console()
    if not job.checkpoint:
        raise ConfigError("eval reflex needs checkpoint=DIR")
    critic, meta = load_reflex(job.checkpoint)
    cfg = build_config(ReflexConfig, meta["algo"], where=f"{job.checkpoint}/config.json algo")
    task = load_task_config(meta["task"], meta.get("task_config"))
    data = collect(task, job.num_envs, job.steps, job.seed, SafetyConfig.load(meta["safety"]))

    threshold = meta["threshold"] if job.threshold is None else job.threshold
    r = risks(critic, data)
    out = event_metrics(r, data.cost, data.last, threshold, cfg.window, cfg.min_lead)
    out["threshold"] = threshold
    sweep = [
        {"threshold": float(th)}
        | event_metrics(r, data.cost, data.last, float(th), cfg.window, cfg.min_lead)
        for th in np.linspace(0.02, 0.9, 45)
    ]
    out["sweep"] = sweep
    where = Path(job.out) if job.out else Path(job.checkpoint).parent / "eval"
    where.mkdir(parents=True, exist_ok=True)
    (where / "reflex_eval.json").write_text(json.dumps(out, indent=2) + "\n")
    plot_sweep(sweep, threshold, where / "reflex_eval.png")
    console.print(
        f"held-out ({out['events']} violation events): recall {out['recall']:.1%} at precision "
        f"{out['precision']:.1%}, lead median {out['lead_median']:.0f} / p10 {out['lead_p10']:.0f} "
        f"steps (alarms on {out['alarm_rate']:.1%} of steps, threshold {threshold:.2f}) "
        f"→ {where / 'reflex_eval.png'}"
    )
    return out
