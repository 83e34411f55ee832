"""Car dynamics throughput: car-steps/s of the batched single-track model alone and with a
64-beam lidar scan, for N = 1, 1024, 65536 cars. The full-task benchmark
(``bench/car_throughput.py``) comes with the racing task.

    OMP_NUM_THREADS=1 python bench/car_dynamics_throughput.py
"""

from __future__ import annotations

import time

import torch

from robot_rl.envs.tasks.car import dynamics as D
from robot_rl.envs.tasks.car.lidar import Lidar, LidarConfig
from robot_rl.envs.tasks.car.track import Track


def measure(n: int, track: str = "twisty", beams: int = 64, min_seconds: float = 1.0) -> dict:
    """Car-steps per second for physics alone and physics + lidar scan, at one state per step."""
    trk = Track.load(track)
    lidar = Lidar(trk.boundary_segments(), LidarConfig(num_beams=beams))
    xy, heading = trk.point_at(
        torch.rand(n, generator=torch.Generator().manual_seed(0)) * trk.length
    )
    state = D.initial_state(xy, heading, torch.full((n,), 3.0))
    steer, accel = torch.full((n,), 0.1), torch.full((n,), 1.0)
    out = {}
    for label, with_lidar in (("physics", False), ("physics+lidar", True)):
        steps, start = 0, time.perf_counter()
        while steps < 3 or time.perf_counter() - start < min_seconds:
            state = D.step(state, steer, accel)
            if with_lidar:
                scan = lidar.scan(state[:, :3])
            steps += 1
        out[label] = n * steps / (time.perf_counter() - start)
    assert torch.isfinite(state).all() and torch.isfinite(scan).all()
    out["segments"] = lidar.segments.shape[0]
    return out


if __name__ == "__main__":
    for n in (1, 1024, 65536):
        r = measure(n)
        print(f"N={n:6d}  physics {r['physics']:10.4g}  physics+lidar {r['physics+lidar']:10.4g}")
