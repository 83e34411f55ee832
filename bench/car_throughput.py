"""RC-car throughput: car-steps/s of ``rccar_race`` with the full task layer against physics only.

    OMP_NUM_THREADS=1 python bench/car_throughput.py [--sizes 1,16,...,65536] [--device cpu]
        [--repeats 3] [--seconds 1.0] [--out docs/figures]

For each N (cars in one batched env):

* **full task**: ``env.step(action)``: 5 physics substeps of the single-track model, then the task
  layer (track progress, body-corner collision check, 32-beam lidar, observation, rewards,
  terminations and automatic resets). Actions are random: steer uniform in [-1, 1], speed
  uniform in [0, 1] (3.5–7 m/s), so cars crash and reset often; resets per car-step are reported.
* **physics only** (the anchor): ``env.backend.step(env.substeps)`` on the same env's state, the
  same substeps with no task layer, on one torch thread as inside ``env.step``; and, when this
  process has more torch threads, also on all of them.

Car-steps = N × control steps. A window times at least 3 steps and at least ``--seconds``; full and
physics windows alternate on the same env (its state is restored after each physics window), so
both see the same machine load; each figure is the median over ``--repeats`` windows. On CUDA the
device is synchronised around every window. ``--profile N`` splits one full step into its parts
(exclusive wall time of physics, lidar, progress, collision, observation, resets, the rest).
Writes a markdown table to stdout, ``car_throughput.json`` and ``car_throughput.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

import robot_rl.envs
from robot_rl.core.threads import torch_threads

TASK = "rccar_race"
MIN_STEPS = 3


def _sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    return sizes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_action(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, 2) steer uniform in [-1, 1], speed uniform in [0, 1]: always driving forward."""
    u = torch.rand(n, 2, generator=gen, device=device)
    return torch.stack((2.0 * u[:, 0] - 1.0, u[:, 1]), dim=-1)


def timed(step: Callable[[], object], device: torch.device, seconds: float) -> tuple[int, float]:
    """Run ``step`` ≥ MIN_STEPS times and ≥ ``seconds``; (steps, wall seconds)."""
    _sync(device)
    count, start = 0, time.perf_counter()
    while count < MIN_STEPS or time.perf_counter() - start < seconds:
        step()
        count += 1
    _sync(device)
    return count, time.perf_counter() - start


def measure(n: int, args: argparse.Namespace) -> dict:
    """Median car-steps/s of the full step and of physics alone on one env of ``n`` cars."""
    device = torch.device(args.device)
    env = robot_rl.envs.make(TASK, n, device=args.device, seed=0)
    env.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    resets = [0]

    def full() -> None:
        _, _, terminated, truncated, _ = env.step(random_action(n, gen, device))
        resets[0] += int((terminated | truncated).sum())  # one host sync, as a training loop has

    def physics(threads: int) -> Callable[[], None]:
        def run() -> None:
            with torch_threads(threads):
                env.backend.step(env.substeps)

        return run

    physics_runs = {"physics": physics(1)}
    if device.type == "cpu" and args.threads > 1:
        physics_runs[f"physics_{args.threads}t"] = physics(args.threads)
    for _ in range(2):  # warm-up: caches, allocator, lidar grid
        full()
        for run in physics_runs.values():
            run()
    rates: dict[str, list[float]] = defaultdict(list)
    total_resets = total_car_steps = 0
    for _ in range(args.repeats):
        resets[0] = 0
        steps, wall = timed(full, device, args.seconds)
        rates["full"].append(n * steps / wall)
        total_resets += resets[0]
        total_car_steps += n * steps
        saved = env.backend.state.clone()
        for label, run in physics_runs.items():
            steps, wall = timed(run, device, args.seconds)
            rates[label].append(n * steps / wall)
            env.backend.state = saved.clone()  # physics alone would drive the cars off the track
    env.close()
    out = {"n": n, **{k: statistics.median(v) for k, v in rates.items()}}
    out["samples"] = dict(rates)
    out["resets_per_car_step"] = total_resets / total_car_steps
    out["task_share"] = 1.0 - out["full"] / out["physics"]
    return out


def profile(n: int, args: argparse.Namespace, steps: int = 10) -> dict[str, float]:
    """ms per control step of each part of ``env.step`` at ``n`` cars (exclusive wall time: a part
    called inside another, such as the lidar scan of a reset, counts to the outer one)."""
    device = torch.device(args.device)
    env = robot_rl.envs.make(TASK, n, device=args.device, seed=0)
    env.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    spent: dict[str, float] = defaultdict(float)
    active = [False]

    def timer(label: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*a, **kw):
            if active[0]:
                return fn(*a, **kw)
            active[0] = True
            _sync(device)
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                _sync(device)
                spent[label] += time.perf_counter() - start
                active[0] = False

        return wrapped

    # instance attributes shadow the methods; tracks and lidars are shared (cached), so restore
    patched = [(env.backend, "step", "physics"), (env, "_body_off_track", "collision")]
    patched += [(env, "_observe", "observation"), (env, "_reset_ids", "resets")]
    patched += [(lidar, "scan", "lidar") for lidar in env.lidars]
    for track in env.tracks:
        patched += [(track, m, "progress") for m in ("progress_near", "half_widths_at")]
        patched += [(track, "progress_delta", "progress")]
    for obj, name, label in patched:
        setattr(obj, name, timer(label, getattr(obj, name)))
    try:
        for _ in range(2):
            env.step(random_action(n, gen, device))
        spent.clear()
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(random_action(n, gen, device))
        _sync(device)
        total = time.perf_counter() - start
    finally:
        for obj, name, _ in patched:
            delattr(obj, name)
        env.close()
    out = {k: 1e3 * v / steps for k, v in spent.items()}
    out["rest"] = 1e3 * total / steps - sum(out.values())
    out["total"] = 1e3 * total / steps
    return out


def machine_info(args: argparse.Namespace) -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if args.device == "cuda":
        cpu += f"; GPU {torch.cuda.get_device_name()}"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "cpu": cpu,
        "usable_cpus": len(os.sched_getaffinity(0)),
        "torch_threads": args.threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def table(results: list[dict], threads: int) -> str:
    extra = f"physics_{threads}t"
    has_extra = extra in results[0]
    head = "| N | full task | physics only | full ÷ physics | task share | resets / car-step |"
    sep = "|---:|---:|---:|---:|---:|---:|"
    if has_extra:
        head += f" physics, {threads} threads |"
        sep += "---:|"
    lines = [head, sep]
    for r in results:
        ratio = r["full"] / r["physics"]
        line = (
            f"| {r['n']:,} | {r['full']:,.0f} | {r['physics']:,.0f} | {ratio:.3f}"
            f" | {100 * r['task_share']:.0f}% | {r['resets_per_car_step']:.4f} |"
        )
        if has_extra:
            line += f" {r[extra]:,.0f} |"
        lines.append(line)
    return "\n".join(lines)


def plot(results: list[dict], threads: int, info: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in results]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(ns, [r["physics"] for r in results], "o-", label="physics only (1 thread)")
    extra = f"physics_{threads}t"
    if extra in results[0]:
        ax.plot(ns, [r[extra] for r in results], "s:", label=f"physics only ({threads} threads)")
    ax.plot(ns, [r["full"] for r in results], "o-", label="full task (env.step)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("cars N")
    ax.set_ylabel("car-steps / s (control steps × N)")
    ax.set_title(f"rccar_race on {info['device']}, torch {info['torch']}, {info['date'][:10]}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=_sizes, default=[1, 16, 256, 1024, 4096, 16384, 65536])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--repeats", type=int, default=3, help="timed windows per configuration")
    p.add_argument("--seconds", type=float, default=1.0, help="least length of one window (s)")
    p.add_argument("--profile", type=int, default=4096, help="N of the per-part split (0: none)")
    p.add_argument("--out", default="docs/figures", help="folder for the JSON and the PNG")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.seconds < 0:
        p.error(f"--repeats must be >= 1 and --seconds >= 0, got {args.repeats}, {args.seconds}")
    args.threads = torch.get_num_threads()
    info = machine_info(args)
    print(json.dumps(info))
    results = []
    for n in args.sizes:
        r = measure(n, args)
        results.append(r)
        print(f"N={n}: full {r['full']:,.0f}/s, physics {r['physics']:,.0f}/s", flush=True)
    split = profile(args.profile, args) if args.profile else {}
    print()
    print(table(results, args.threads))
    if split:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(split.items(), key=lambda kv: -kv[1]))
        print(f"\nms per step at N={args.profile}: {parts}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"machine": info, "args": vars(args), "results": results}
    record["profile"] = {"n": args.profile, "ms_per_step": split}
    (out / "car_throughput.json").write_text(json.dumps(record, indent=1))
    plot(results, args.threads, info, out / "car_throughput.png")
    best = max(results, key=lambda r: r["full"])
    ratio = best["full"] / best["physics"]
    print(f"\nbest full task: {best['full']:,.0f} car-steps/s at N={best['n']:,}")
    print(f"full_over_physics_at_best={ratio:.3f}")


if __name__ == "__main__":
    main()
