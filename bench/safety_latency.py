"""Per-tick latency of each safety component and of the whole arm chain (7 joints) on CPU.

    python bench/safety_latency.py --ticks 5000 --repeats 5

One robot (N = 1), the chain of ``configs/safety/arm.yaml`` on ``hardware/arm.yaml``, plus the
energy tank (off in the default arm chain) and, with ``--reflex DIR``, a trained reflex critic,
each timed alone. Inputs: a
random walk of the measured pose around the default pose with commands that mostly pass and
sometimes need a correction (1 tick in 5 asks for a jump past the rate limit, toward the table),
so both the cheap path and the correcting path (QP) are timed. Targets: chain p99 <= 200 µs
without the QP (``cbf`` removed), <= 1 ms with it.

Anchor, in the same run: the same chain with the CBF's QP solved by OSQP through qpsolvers (the
solver the issue names as an example) instead of DAQP; ``ratio_anchor_over_ours`` compares the
chains' p99. Medians over ``--repeats`` repeats of the per-repeat p50/p99.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import numpy as np
import qpsolvers
import torch

import robot_rl.safety.cbf as cbf_module
from robot_rl.safety import SafetyConfig, SafetyState, build_chain


def inputs(
    ticks: int, lower: np.ndarray, upper: np.ndarray, default: np.ndarray, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A random walk of the measured pose within ±6% of each joint's range around the default
    pose (the tool stays in its workspace), with commands a small step away; one tick in five a
    wild command (a jump toward the table)."""
    rng = np.random.default_rng(seed)
    span = upper - lower
    home = (default - lower) / span
    u = home.copy()
    out = []
    for _ in range(ticks):
        u = np.clip(u + rng.normal(0, 0.005, u.shape), home - 0.06, np.minimum(home + 0.06, 0.9))
        q = lower + u * span
        command = q + rng.normal(0, 0.003, q.shape) * span
        if rng.random() < 0.2:
            command = command + rng.normal(0, 0.1, q.shape) * span
            command[1] += 0.6
        out.append((q[None].copy(), command[None]))
    return out


def time_chain(chain, data) -> tuple[dict[str, list[float]], list[float]]:
    """Per-component and whole-chain tick times (µs)."""
    per = {f.name: [] for f in chain.filters}
    whole = []
    chain.reset()
    for k, (q, command) in enumerate(data):
        now = 0.05 * k
        state = SafetyState(q=q, dq=np.zeros_like(q), now=now, stamp=now, command_stamp=now)
        t0 = time.perf_counter_ns()
        applied, _ = chain.step(state, command)
        whole.append((time.perf_counter_ns() - t0) / 1e3)
        state = chain.with_memory(state)
        for f in chain.filters:  # each component alone on the same input
            t1 = time.perf_counter_ns()
            f.filter(state, command)
            per[f.name].append((time.perf_counter_ns() - t1) / 1e3)
    return per, whole


def osqp_step(u_des, h, grad, gamma, lb, ub):
    """The anchor: cbf_step with OSQP (sparse, through qpsolvers) in place of DAQP."""
    if len(h) == 0 or (grad @ u_des >= -gamma * h).all():
        return np.clip(u_des, lb, ub)
    import scipy.sparse as sp

    u = qpsolvers.solve_qp(
        sp.csc_matrix(np.eye(len(u_des))),
        -u_des,
        sp.csc_matrix(-grad),
        gamma * h,
        lb=lb,
        ub=ub,
        solver="osqp",
        eps_abs=1e-7,
        eps_rel=1e-7,
    )
    return None if u is None else np.clip(u, lb, ub)


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default="")
    ap.add_argument("--reflex", default="", help="a reflex checkpoint to time as well")
    args = ap.parse_args()
    torch.set_num_threads(1)

    chain = build_chain("arm", "arm")
    cfg = SafetyConfig.load("arm")
    extras = ["energy_tank"] + (["reflex"] if args.reflex else [])
    extra = build_chain(
        "arm", {**cfg.__dict__, "chain": extras, "reflex": {"checkpoint": args.reflex}}
    )
    no_qp = build_chain("arm", "arm")
    no_qp.filters = [f for f in no_qp.filters if f.name != "cbf"]
    rows: dict[str, dict[str, list[float]]] = {}
    ours_step = cbf_module.cbf_step

    def record(name: str, xs: list[float]) -> None:
        r = rows.setdefault(name, {"p50": [], "p99": []})
        r["p50"].append(pct(xs, 50))
        r["p99"].append(pct(xs, 99))

    for rep in range(args.repeats):
        space = chain.space
        data = inputs(args.ticks, space.lower, space.upper, space.default, seed=rep)
        per, whole = time_chain(chain, data)
        per |= time_chain(extra, data)[0]
        for name, xs in per.items():
            record(name, xs)
        record("chain (with QP, DAQP)", whole)
        record("chain without QP", time_chain(no_qp, data)[1])
        cbf_module.cbf_step = osqp_step  # the anchor, same inputs
        try:
            record("anchor: chain with QP, OSQP", time_chain(chain, data)[1])
        finally:
            cbf_module.cbf_step = ours_step

    med = {k: {s: statistics.median(v[s]) for s in ("p50", "p99")} for k, v in rows.items()}
    print(f"{'component':32s} {'p50 µs':>9s} {'p99 µs':>9s}")
    for name, m in med.items():
        print(f"{name:32s} {m['p50']:9.1f} {m['p99']:9.1f}")
    ratio = med["anchor: chain with QP, OSQP"]["p99"] / med["chain (with QP, DAQP)"]["p99"]
    ok_noqp = med["chain without QP"]["p99"] <= 200
    ok_qp = med["chain (with QP, DAQP)"]["p99"] <= 1000
    print(f"target chain p99 <= 200 µs without QP: {'met' if ok_noqp else 'MISSED'}")
    print(f"target chain p99 <= 1 ms with QP: {'met' if ok_qp else 'MISSED'}")
    print(f"ratio_anchor_over_ours {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="minutes"
                    ),
                    "machine": platform.processor() or platform.machine(),
                    "ticks": args.ticks,
                    "repeats": args.repeats,
                    "median": med,
                    "ratio_anchor_over_ours": ratio,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
