"""Car dynamics throughput: car-steps/s of the batched single-track model alone, with a 64-beam
lidar scan through the grid (``LidarConfig.method="grid"``), and with the brute-force scan that
tests every beam against every segment (the anchor), for N = 1, 1024, 65536 cars. Each figure is
the median of a few repeats; ``grid/brute`` is the lidar speed-up on the whole step. The
full-task benchmark (``bench/car_throughput.py``) comes with the racing task.

    OMP_NUM_THREADS=1 python bench/car_dynamics_throughput.py --track twisty --max-range 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from robot_rl.envs.tasks.car import dynamics as D
from robot_rl.envs.tasks.car.lidar import Lidar, LidarConfig
from robot_rl.envs.tasks.car.track import Track


def _rate(n: int, step, repeats: int, min_seconds: float) -> float:
    """Median over ``repeats`` of car-steps/s, each repeat running ``step`` for ≥ min_seconds."""
    step()  # warm-up
    rates = []
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        while steps < 1 or time.perf_counter() - start < min_seconds:
            step()
            steps += 1
        rates.append(n * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(
    n: int,
    track: str = "twisty",
    beams: int = 64,
    max_range: float = 10.0,
    repeats: int = 3,
    min_seconds: float = 0.3,
) -> dict:
    """Car-steps per second for physics alone and physics + lidar (grid, brute force)."""
    trk = Track.load(track)
    segs = trk.boundary_segments()
    start = time.perf_counter()
    grid = Lidar(segs, LidarConfig(num_beams=beams, max_range=max_range))
    build = time.perf_counter() - start
    brute = Lidar(segs, LidarConfig(num_beams=beams, max_range=max_range, method="brute"))
    xy, heading = trk.point_at(
        torch.rand(n, generator=torch.Generator().manual_seed(0)) * trk.length
    )
    start_state = D.initial_state(xy, heading, torch.full((n,), 3.0))
    state = start_state
    steer, accel = torch.full((n,), 0.1), torch.full((n,), 1.0)

    def step(lidar: Lidar | None):
        # Cars 1 m from their start go back to it, as the task's resets will keep them on track
        # (and inside the lidar grid, where the fast path applies).
        nonlocal state
        state = D.step(state, steer, accel)
        drifted = (state[:, :2] - xy).norm(dim=-1) > 1.0
        state = torch.where(drifted[:, None], start_state, state)
        if lidar is not None:
            lidar.scan(state[:, :3])

    out = {"segments": segs.shape[0], "build_s": build}
    for label, lidar in (("physics", None), ("grid", grid), ("brute", brute)):
        out[label] = _rate(n, lambda lidar=lidar: step(lidar), repeats, min_seconds)
    assert torch.isfinite(state).all()
    torch.testing.assert_close(grid.scan(state[:, :3]), brute.scan(state[:, :3]), rtol=0, atol=1e-4)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--track", default="twisty")
    parser.add_argument("--max-range", type=float, default=10.0)
    parser.add_argument("--beams", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="1,1024,65536", help="comma-separated car counts")
    args = parser.parse_args()
    for n in (int(v) for v in args.sizes.split(",")):
        r = measure(n, args.track, args.beams, args.max_range, args.repeats)
        ratio = r["grid"] / r["brute"]
        print(
            f"{args.track} N={n:6d}  physics {r['physics']:10.4g}  physics+lidar grid "
            f"{r['grid']:10.4g}  brute {r['brute']:10.4g}  grid/brute {ratio:5.1f}×"
            f"  (segments {r['segments']}, grid build {r['build_s']:.2f} s)"
        )
