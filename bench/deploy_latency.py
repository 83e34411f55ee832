"""Deployment through the ROS 2 graph over DDS: latency, tick jitter, rate under load, fidelity.

    python bench/deploy_latency.py --checkpoint DIR [--instruction TEXT] [--seconds 20]
        [--episodes 100] [--out docs/figures]

1. **Latency** (the arm profile at 50 Hz): the policy node and the safety node run as separate
   processes on a private DDS domain; this process is the robot. It publishes the simulated
   arm's ``/joint_states`` and object poses on a 20 ms grid and times each observation until
   the arm command it causes arrives (observation → policy → ``action_raw`` → safety chain →
   ``/arm_controller/commands``), then applies the command and steps the simulation. One
   observation is in flight at a time: a command later than the next grid tick delays that
   tick (counted in the sustained rate). Runs twice: on a quiet machine, and while another
   process keeps one core busy (numpy matrix products).
   **Anchor**: the same two nodes called in this process, no transport, no processes: the
   compute alone. The ratio is graph over anchor.
2. **Jitter**: deviation of the command arrivals' intervals from the 20 ms period.
3. **Fidelity**: ``robot-rl launch launch/arm_sim.launch.xml`` runs ``--episodes`` episodes in
   real time (20 Hz) through the graph; ``robot-rl eval ... safety=arm`` runs the same number in
   the batched simulator with the same safety chain. Fidelity = graph success ÷ batched success.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_rl.core import asset_path  # noqa: E402
from robot_rl.deploy.node import Clock, ManualClock  # noqa: E402
from robot_rl.deploy.qos import COMMAND, LATCHED, STATE, to_dds  # noqa: E402
from robot_rl.msgs import Float64MultiArray, String  # noqa: E402

RATE_HZ = 50.0
NODE_PARAMS = ROOT / "ros2_ws/src/robot_rl_ros/config/arm.yaml"


def profile_at(rate: float, directory: Path) -> Path:
    """A copy of the arm profile with another control rate."""
    text = asset_path("hardware", "arm.yaml").read_text()
    text = re.sub(r"control_rate_hz:\s*[\d.]+", f"control_rate_hz: {rate}", text)
    path = directory / f"arm_{int(rate)}hz.yaml"
    path.write_text(text)
    return path


def node_args(profile: Path, checkpoint: str, instruction: str) -> dict[str, list[str]]:
    common = ["--params-file", str(NODE_PARAMS), "-p", f"profile:={profile}"]
    budget = 0.6 / RATE_HZ  # wait at most 60% of a period for a new chunk
    return {
        "policy_node": ["-r", "__node:=policy_node", *common, "-p", f"checkpoint:={checkpoint}",
                        "-p", f"instruction:={instruction}", "-p", f"inference_budget_s:={budget}",
                        "-p", "reset_topic:=/sim/episode"],
        # the longest watchdog that still holds within two periods at this rate
        "safety_node": ["-r", "__node:=safety_node", *common, "-p", "engage:=true",
                        "-p", "ramp_s:=0.2", "-p", f"watchdog_timeout_s:={1.75 / RATE_HZ}",
                        "-p", "reset_topic:=/sim/episode"],
    }  # fmt: skip


class Robot:
    """The simulated arm behind DDS topics, stepped in lockstep with the commands."""

    def __init__(self, dp, profile: Path, task: str, seed: int) -> None:
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode
        from robot_rl.deploy.rosargs import NodeOptions
        from robot_rl.envs import make

        env = make(task, 1, seed=seed, profile=str(profile))
        self.bridge = SimBridgeNode({"task": task, "seed": seed}, Clock(), env=env)
        self.bridge.started, self.bridge.phase, self.bridge.accepting = True, "run", True
        opts = NodeOptions("sim_bridge")
        self.writers = {}
        for key, port in self.bridge.publishers.items():
            name = opts.resolve(port.topic)
            self.writers[key] = DataWriter(dp, Topic(dp, "rt" + name, port.msg_type), to_dds(STATE))
        self.arm = DataReader(
            dp, Topic(dp, "rt/arm_controller/commands", Float64MultiArray), to_dds(COMMAND)
        )
        self.gripper = DataReader(
            dp, Topic(dp, "rt/gripper_controller/commands", Float64MultiArray), to_dds(COMMAND)
        )
        self.mode = DataReader(dp, Topic(dp, "rt/safety_node/mode", String), to_dds(LATCHED))
        self.actions = DataReader(
            dp, Topic(dp, "rt/policy_node/action_raw", Float64MultiArray), to_dds(COMMAND)
        )

    def publish(self, out) -> bool:
        """Write the bridge's messages; True when they hold a new observation."""
        for key, msg in out:
            self.writers[key].write(msg)
        return any(key == "joints" for key, _ in out)

    def take_commands(self) -> list[tuple[float, float]]:
        """Apply the commands that arrived; their (receipt, written) wall-clock times."""
        now = time.time()
        for s in self.gripper.take(N=16):
            self.bridge.on_gripper(s)
        out = []
        for s in self.arm.take(N=16):
            self.bridge.on_arm(s)
            out.append((now, s.sample_info.source_timestamp * 1e-9))
        return out


def run_graph(args, profile: Path, seconds: float, load: bool) -> dict:
    """Latency through the DDS graph, one observation in flight."""
    from cyclonedds.domain import DomainParticipant

    domain = 150 + os.getpid() % 50
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), OMP_NUM_THREADS=str(args.threads))
    log = open(Path(args.out) / f"deploy_nodes{'_load' if load else ''}.log", "w")  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "robot_rl.deploy.main", exe, "--ros-args", *rest],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        for exe, rest in node_args(profile, args.checkpoint, args.instruction).items()
    ]  # fmt: skip
    loader = None
    try:
        dp = DomainParticipant(domain)
        robot = Robot(dp, profile, args.task, args.seed)
        period = 1.0 / RATE_HZ
        # wait until the safety node hands over to the policy and commands flow
        end = time.monotonic() + 120
        engaged = False
        while time.monotonic() < end and not engaged:
            robot.publish(robot.bridge._observe())
            engaged = any(s.data == "policy" for s in robot.mode.take(N=16))
            time.sleep(period)
        if not engaged:
            raise RuntimeError("the safety node never engaged the policy")
        if load:
            loader = subprocess.Popen(
                [sys.executable, "-c", "import numpy as np\na=np.random.rand(300,300)\n"
                 "while True: a=a@a; a/=np.abs(a).max()"],
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )  # fmt: skip
            time.sleep(1.0)
        latencies, policy_lat, arrivals, misses = [], [], [], 0
        robot.take_commands(), robot.actions.take(N=64)  # drop what came before
        t_next = time.monotonic()
        t_end = t_next + seconds
        first = True
        while t_next < t_end:
            time.sleep(max(0.0, t_next - time.monotonic()))
            out = robot.bridge._observe() if first else robot.bridge.tick_step()
            first = False
            t_pub = time.time()  # wall clock, as DDS source timestamps
            if robot.publish(out):
                # this observation's action, then the command the safety node wrote after it
                # (by the writers' timestamps: a watchdog hold written before does not count)
                # a policy between chunks publishes nothing for a tick: count it, go on
                deadline, t_act, cmds = t_pub + 2 * period, None, []
                while time.time() < deadline:
                    for a in robot.actions.take(N=16):
                        t_act = t_act or a.sample_info.source_timestamp * 1e-9
                    cmds += robot.take_commands()
                    mine = [c for c in cmds if t_act is not None and c[1] >= t_act]
                    if mine:
                        latencies.append(mine[0][0] - t_pub)
                        policy_lat.append(t_act - t_pub)
                        arrivals.append(mine[0][0])
                        break
                    time.sleep(0.0002)
                else:
                    misses += 1
            t_next = max(t_next + period, time.monotonic())
        wall = seconds
        rate = len(arrivals) / wall
        iv = np.diff(arrivals)
        return {
            "latency_ms": summarize(1e3 * np.array(latencies)),
            "policy_ms": summarize(1e3 * np.array(policy_lat)),
            "jitter_ms": summarize(1e3 * np.abs(iv - period)),
            "rate_hz": rate,
            "no_command": misses,
            "samples": len(latencies),
            "latencies_ms": [round(1e3 * x, 3) for x in latencies],
        }
    finally:
        if loader is not None:
            loader.kill()
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def run_anchor(args, profile: Path, seconds: float) -> dict:
    """The same nodes called in this process: the compute without transport or processes."""
    import torch

    from robot_rl.deploy.nodes.policy import PolicyNode
    from robot_rl.deploy.nodes.safety import SafetyNode
    from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode
    from robot_rl.envs import make

    torch.set_num_threads(args.threads)
    env = make(args.task, 1, seed=args.seed, profile=str(profile))
    # a manual clock one period per tick: the compute is timed, not the safety node's pacing
    clock = ManualClock(0.0)
    bridge = SimBridgeNode({"task": args.task, "seed": args.seed}, clock, env=env)
    bridge.started, bridge.phase, bridge.accepting = True, "run", True
    common = {"profile": str(profile)}
    policy = PolicyNode(
        common | {"checkpoint": args.checkpoint, "instruction": args.instruction,
                  "inference_budget_s": 0.6 / RATE_HZ}, clock,
    )  # fmt: skip
    safety = SafetyNode(
        common | {"engage": True, "ramp_s": 0.2, "watchdog_timeout_s": 1.75 / RATE_HZ}, clock
    )
    safety.activate()
    safety.modes.mode = safety.modes.mode.POLICY  # skip the ramp: only the tick is timed
    latencies = []
    period = 1.0 / RATE_HZ
    t_end = time.monotonic() + seconds
    out = bridge._observe()
    while time.monotonic() < t_end:
        clock.advance(period)
        t0 = time.monotonic()
        msgs = dict(out)
        for key, msg in out:
            if key == "episode":
                policy.on_reset(msg)
                safety.on_reset_event(msg)
        if "joints" in msgs:
            policy.on_cube(msgs["cube"])
            policy.on_goal(msgs["goal"])
            safety.on_joints(msgs["joints"])
            for _, action in policy.on_joints(msgs["joints"]):
                for key, cmd in safety.on_action(action) or []:
                    if key == "arm":
                        bridge.on_arm(cmd)
                    elif key == "gripper":
                        bridge.on_gripper(cmd)
            latencies.append(time.monotonic() - t0)
        time.sleep(max(0.0, period - (time.monotonic() - t0)))
        out = bridge.tick_step()
    policy.shutdown()
    return {"latency_ms": summarize(1e3 * np.array(latencies)), "samples": len(latencies)}


def run_fidelity(args) -> dict:
    """Success through the graph (real time, 20 Hz) and in the batched simulator."""
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    domain = 200 + os.getpid() % 30
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "robot_rl.cli.main", "launch", "launch/arm_sim.launch.xml",
           f"checkpoint:={args.checkpoint}", f"instruction:={args.instruction}",
           f"task:={args.task}", f"seed:={args.seed}", f"episodes:={args.episodes}"]  # fmt: skip
    dp = DomainParticipant(domain)
    reader = DataReader(dp, Topic(dp, "rt/sim/episode", String), to_dds(STATE))
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    results, t0 = [], time.monotonic()
    try:
        from tqdm import tqdm

        with tqdm(total=args.episodes, desc="episodes through the graph") as bar:
            while len(results) < args.episodes and time.monotonic() - t0 < 3600:
                for s in reader.take(N=64):
                    event = json.loads(s.data)
                    if event.get("event") == "end":
                        results.append(event)
                        bar.update(1)
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    graph = float(np.mean([r["success"] for r in results]))
    print(f"through the graph: {graph:.1%} over {len(results)} episodes", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "robot_rl.cli.main", "eval", f"checkpoint={args.checkpoint}",
             f"task={args.task}", "safety=arm", f"episodes={args.episodes}", f"seed={args.seed}",
             f"out={tmp}", "video_episodes=0"],
            cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)), check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        report = json.loads((Path(tmp) / "report.json").read_text())
    summary = report["tasks"][args.task]["summary"]
    batched = summary["success_rate"]
    return {
        "graph_success": graph,
        "graph_episodes": len(results),
        "graph_mean_length": float(np.mean([r["length"] for r in results])),
        "batched_success": batched,
        "batched_mean_length": summary["mean_length"],
        "fidelity": graph / batched if batched > 0 else float("nan"),
        "graph_wall_s": time.monotonic() - t0,
    }


def summarize(x: np.ndarray) -> dict:
    if len(x) == 0:
        return {}
    return {
        "p50": float(np.percentile(x, 50)),
        "p90": float(np.percentile(x, 90)),
        "p99": float(np.percentile(x, 99)),
        "max": float(np.max(x)),
        "mean": float(np.mean(x)),
    }


def plot(results: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for label, key in (("DDS graph, quiet", "graph"), ("DDS graph, one core busy", "graph_load")):
        lat = np.sort(results[key]["latencies_ms"])
        ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=label)
    ax.axvline(1e3 / RATE_HZ, color="k", ls=":", lw=1, label="control period (50 Hz)")
    ax.set_xlabel("observation → arm command (ms)")
    ax.set_ylabel("fraction of ticks")
    ax.set_xscale("log")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("arm policy + safety chain through ROS 2 topics over DDS", fontsize=9)
    fig.tight_layout()
    path = out / "deploy_latency.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--instruction", default="")
    ap.add_argument("--task", default="arm_reach")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the policy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-fidelity", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs/figures"))
    args = ap.parse_args()
    # the fidelity run starts processes in other directories: pass them an absolute path
    args.checkpoint = str(Path(args.checkpoint).resolve())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "command": " ".join(sys.argv),
    }
    with tempfile.TemporaryDirectory() as tmp:
        profile = profile_at(RATE_HZ, Path(tmp))
        results["anchor"] = run_anchor(args, profile, args.seconds)
        print("anchor (in-process)", results["anchor"]["latency_ms"], flush=True)
        results["graph"] = run_graph(args, profile, args.seconds, load=False)
        print("graph", results["graph"]["latency_ms"], results["graph"]["rate_hz"], flush=True)
        results["graph_load"] = run_graph(args, profile, args.seconds, load=True)
        print("graph, loaded", results["graph_load"]["latency_ms"], flush=True)
    for key in ("graph", "graph_load"):
        results[key]["ratio_p50_over_anchor"] = (
            results[key]["latency_ms"]["p50"] / results["anchor"]["latency_ms"]["p50"]
        )
    if not args.skip_fidelity:
        results["fidelity"] = run_fidelity(args)
        print("fidelity", results["fidelity"], flush=True)
    plot(results, out)
    path = out / "deploy_latency.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    brief = {k: v for k, v in results.items() if k not in ("graph", "graph_load")}
    for key in ("graph", "graph_load"):
        brief[key] = {k: v for k, v in results[key].items() if k != "latencies_ms"}
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    main()
