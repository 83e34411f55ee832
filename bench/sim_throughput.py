"""Env steps per second of ``arm_push``: our batched VecEnv against gymnasium's vector envs.

One run measures, for each N:

* ours, full RL loop: ``env.step(torch.rand(N, 7) * 2 - 1)`` (IK, rewards, observations,
  auto-reset), and physics only: ``env.backend.step(env.substeps)`` on the same env;
* gymnasium ``SyncVectorEnv`` and ``AsyncVectorEnv`` over ``robot_rl/ArmPush-v0`` (the single-env
  gymnasium adapter), actions from ``envs.action_space.sample()``, default autoreset mode
  (NEXT_STEP: the step after an episode ends is a reset, counted as a step).

Env-steps = N × vector steps. Repeats run round-robin over all configurations (every env rebuilt
and warmed up each time, since step cost depends on state), so a burst of background load spoils
one repeat of many configurations rather than every repeat of one; the median is reported. The
CPU time other processes take during each window is recorded too. The last stdout line is
``ratio_vs_gymnasium=<x.xx>``: ours at N=256 over the better gymnasium mode at its best N.

    python bench/sim_throughput.py                  # full run, about 3 minutes on 2 cores
    python bench/sim_throughput.py --quick          # smoke test, < 60 s
    python bench/sim_throughput.py --json out.json  # also dump every sample
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

import gymnasium as gym
import mujoco
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import robot_rl.envs  # registers the gymnasium ids

TASK = "arm_push"
GYM_ID = "robot_rl/ArmPush-v0"


def _sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=[1, 4, 16, 64, 256, 1024],
        help="N for our VecEnv (default 1,4,16,64,256,1024)",
    )
    p.add_argument(
        "--gym-sizes",
        type=_sizes,
        default=[1, 2, 4, 8, 16],
        help="N for gymnasium Sync/Async (default 1,2,4,8,16; more envs than cores "
        "only costs memory)",
    )
    p.add_argument(
        "--seconds", type=float, default=2.0, help="length of one timed window (default 2.0 s)"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="time a fixed number of vector steps instead of --seconds",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=0.5,
        help="seconds of untimed stepping after each (re)build (default 0.5)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed windows per configuration; the median is reported (default 3)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=cores,
        help=f"MuJoCo physics threads for ours, at most N (default: usable cores = {cores})",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads in this process (default: --threads)",
    )
    p.add_argument(
        "--context",
        default="forkserver",
        choices=["forkserver", "spawn", "fork"],
        help="AsyncVectorEnv start method (default forkserver: forking a process "
        "that already runs MuJoCo/OpenMP threads can deadlock)",
    )
    p.add_argument("--ratio-n", type=int, default=256, help="our N in the final ratio (256)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (< 60 s)")
    p.add_argument("--json", metavar="PATH", help="write machine info and every sample here")
    args = p.parse_args(argv)
    if args.quick:  # smaller defaults; options given explicitly still win
        p.set_defaults(sizes=[1, 16], gym_sizes=[1, 2], seconds=0.3, warmup=0.1, repeats=1)
        args = p.parse_args(argv)
    if args.torch_threads is None:
        args.torch_threads = args.threads
    if min(args.repeats, args.threads, args.torch_threads, args.steps or 1) < 1 or args.steps == 0:
        p.error("--repeats, --threads, --torch-threads and --steps must be >= 1")
    return args


def machine_info(args: argparse.Namespace) -> dict:
    """CPU model, core counts, load and library versions: the context every number needs."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "physics_threads": args.threads,
        "torch_threads": args.torch_threads,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mujoco": mujoco.__version__,
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
    }


def _cpu_seconds(pids: Sequence[int]) -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process plus ``pids``)."""
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / hz  # all but idle and iowait; steal counts
    ru = resource.getrusage(resource.RUSAGE_SELF)
    mine = ru.ru_utime + ru.ru_stime
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            mine += (int(fields[11]) + int(fields[12])) / hz  # utime, stime
        except OSError:
            pass
    return busy, mine


def timed_rate(
    step: Callable[[], object], num_envs: int, args: argparse.Namespace, pids: Sequence[int] = ()
) -> tuple[float, float]:
    """Step for ``args.steps`` vector steps or ``args.seconds``; returns (env-steps/s, cores
    that other processes kept busy meanwhile)."""
    count = 0
    busy0, mine0 = _cpu_seconds(pids)
    start = time.perf_counter()
    while (count < args.steps) if args.steps else (time.perf_counter() - start < args.seconds):
        step()
        count += 1
    wall = time.perf_counter() - start
    busy1, mine1 = _cpu_seconds(pids)
    return num_envs * count / wall, max(0.0, (busy1 - busy0) - (mine1 - mine0)) / wall


def warm_up(step: Callable[[], object], seconds: float) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()


def measure_ours(n: int, args: argparse.Namespace) -> dict[str, float]:
    """One window of the full loop, then one of physics only, on a fresh env of ``n`` envs."""
    env = robot_rl.envs.make(TASK, n, seed=0, num_threads=min(args.threads, n))
    try:
        env.reset(seed=0)

        def full() -> None:
            env.step(torch.rand(n, 7) * 2 - 1)

        def physics() -> None:
            env.backend.step(env.substeps)

        warm_up(full, args.warmup)
        rate, bg = timed_rate(full, n, args)
        phys_rate, phys_bg = timed_rate(physics, n, args)
        return {"full": rate, "physics": phys_rate, "background_cores": max(bg, phys_bg)}
    finally:
        env.close()


def _gym_env(torch_threads: int | None) -> gym.Env:
    robot_rl.envs.register_gym_envs()  # idempotent; a spawned worker may not have run it yet
    if torch_threads is not None:
        # One worker process per env already fills the cores; torch's pool would oversubscribe.
        torch.set_num_threads(torch_threads)
    return gym.make(GYM_ID)


def measure_gym(mode: str, n: int, args: argparse.Namespace) -> dict[str, float]:
    """One window of gymnasium's ``SyncVectorEnv`` or ``AsyncVectorEnv`` over ``n`` adapters."""
    if mode == "sync":
        envs = gym.vector.SyncVectorEnv([partial(_gym_env, None)] * n)
        pids = []
    else:
        envs = gym.vector.AsyncVectorEnv([partial(_gym_env, 1)] * n, context=args.context)
        pids = [p.pid for p in envs.processes]
    try:
        envs.reset(seed=0)
        envs.action_space.seed(0)

        def step() -> None:
            envs.step(envs.action_space.sample())

        warm_up(step, args.warmup)
        rate, bg = timed_rate(step, n, args, pids)
        return {"rate": rate, "background_cores": bg}
    finally:
        envs.close()


def results_table(med: Callable[[str, int, str], float | None], sizes: list[int]) -> Table:
    t = Table(title=f"{TASK}: env-steps/s, median of repeats")
    for col in (
        "N",
        "ours full loop",
        "ours physics only",
        "task overhead",
        "gym Sync",
        "gym Async",
    ):
        t.add_column(col, justify="right")
    for n in sizes:
        full, phys = med("ours", n, "full"), med("ours", n, "physics")
        cells = [full, phys, None, med("sync", n, "rate"), med("async", n, "rate")]
        text = ["—" if x is None else f"{x:,.0f}" for x in cells]
        text[2] = "—" if full is None else f"{1 - full / phys:.0%}"
        t.add_row(str(n), *text)
    return t


def write_json(
    args: argparse.Namespace, info: dict, samples: dict, med: Callable, ratio: dict
) -> None:
    """Every sample, its medians, the settings and the machine, for later comparison."""
    dump = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {**info, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "results": [
            {
                "mode": mode,
                "num_envs": n,
                "samples": runs,
                "median": {k: med(mode, n, k) for k in runs[0]},
            }
            for (mode, n), runs in samples.items()
        ],
        "ratio": ratio,
    }
    with open(args.json, "w") as f:
        json.dump(dump, f, indent=2)


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    # Without this every Async worker imports torch, MuJoCo and robot_rl anew (~2.5 s each).
    multiprocessing.set_forkserver_preload(["robot_rl.envs"])
    out = Console(width=max(100, Console().width))
    info = machine_info(args)
    out.print(
        f"[bold]{info['cpu']}[/], {info['usable_cpus']} usable cores; threads: {args.threads} "
        f"physics, {args.torch_threads} torch; torch {info['torch']}, mujoco {info['mujoco']}, "
        f"gymnasium {info['gymnasium']}; load {info['load_avg_at_start']}; {info['date']}"
    )
    window = f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"
    out.print(
        f"windows: {window}, {args.repeats} round-robin repeats, {args.warmup:g} s warm-up "
        f"after each build; Async context {args.context}; gymnasium autoreset NEXT_STEP"
    )

    plan = [("ours", n) for n in args.sizes]
    plan += [(mode, n) for mode in ("sync", "async") for n in args.gym_sizes]
    samples: dict[tuple[str, int], list[dict[str, float]]] = {key: [] for key in plan}
    progress = Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        bar = progress.add_task("", total=args.repeats * len(plan))
        for r in range(args.repeats):
            for mode, n in plan:
                progress.update(bar, description=f"repeat {r + 1} {mode} N={n}")
                run = measure_ours if mode == "ours" else partial(measure_gym, mode)
                samples[mode, n].append(run(n, args))
                progress.advance(bar)

    def med(mode: str, n: int, key: str) -> float | None:
        got = samples.get((mode, n))
        return statistics.median(s[key] for s in got) if got else None

    sizes = sorted({n for _, n in plan})
    out.print(results_table(med, sizes))
    out.print(
        "physics only: env.backend.step(substeps=10) per control step, no task logic; "
        "task overhead = 1 − full/physics."
    )
    bg = [s["background_cores"] for runs in samples.values() for s in runs]
    out.print(
        f"other processes kept {statistics.median(bg):.2f} cores busy in the median window, "
        f"{max(bg):.2f} at most" + (" [yellow](noisy run)[/]" if max(bg) > 0.25 else "")
    )

    ratio_n = min(args.sizes, key=lambda n: (abs(n - args.ratio_n), n))
    if ratio_n != args.ratio_n:
        out.print(f"[yellow]N={args.ratio_n} not measured; the ratio uses ours at N={ratio_n}[/]")
    gym_mode, gym_n = max(plan[len(args.sizes) :], key=lambda k: med(*k, "rate"))
    gym_rate, ours_rate = med(gym_mode, gym_n, "rate"), med("ours", ratio_n, "full")
    ratio = ours_rate / gym_rate
    out.print(
        f"ours N={ratio_n}: {ours_rate:,.0f}/s; best gymnasium: {gym_mode} N={gym_n} "
        f"{gym_rate:,.0f}/s"
    )

    if args.json:
        ratio_info = {
            "ours_num_envs": ratio_n,
            "ours": ours_rate,
            "gym_mode": gym_mode,
            "gym_num_envs": gym_n,
            "gym": gym_rate,
            "ratio_vs_gymnasium": ratio,
        }
        write_json(args, info, samples, med, ratio_info)
        out.print(f"wrote {args.json}")
    print(f"ratio_vs_gymnasium={ratio:.2f}", flush=True)
    return ratio


if __name__ == "__main__":
    main()
