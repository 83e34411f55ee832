"""Run a launch file's nodes as processes, the way ``ros2 launch`` does, without ROS.

Each node runs in its own process group with its output prefixed ``[name]``. A node that exits
is reported and the others keep running; the launch ends when every node has exited or on
SIGINT/SIGTERM, which sends SIGINT to every node, then SIGTERM after ``sigterm_timeout`` s, then
SIGKILL after ``sigkill_timeout`` s more (ros2 launch's defaults are 5 s and 5 s). A second
signal skips the wait of the current step.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.launch.parse import NodeSpec, parse_launch

Command = Callable[[NodeSpec], list[str]]
Console = Callable[[str], None]

_STOPPED_BY_SIGINT = (0, -signal.SIGINT, 128 + signal.SIGINT)


def node_command(spec: NodeSpec) -> list[str]:
    """The process that runs ``spec``: its executable through ``robot_rl.deploy.main``."""
    return [sys.executable, "-m", "robot_rl.deploy.main", spec.exec, *spec.ros_args()]


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _pump(pipe: IO[bytes], prefix: str, write: Console) -> None:
    with pipe:
        for raw in iter(pipe.readline, b""):
            write(f"{prefix} {raw.decode(errors='replace').rstrip()}")


class _Node:
    """One started node and what became of it."""

    def __init__(self, label: str, proc: subprocess.Popen[bytes], pumps: list[threading.Thread]):
        self.label, self.proc, self.pumps = label, proc, pumps
        self.exit_code: int | None = None
        self.reported = False

    def running(self) -> bool:
        if self.exit_code is None:
            self.exit_code = self.proc.poll()
        return self.exit_code is None

    def signal(self, sig: int) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)  # the group: a node's own children stop too


class _Launch:
    def __init__(self, console: Console | None, sigterm_timeout: float, sigkill_timeout: float):
        self.nodes: list[_Node] = []
        self.timeouts = (sigterm_timeout, sigkill_timeout)
        self.failed = False
        self.signals = 0
        self._lock = threading.Lock()
        self._console = console

    def out(self, line: str, err: bool = False) -> None:
        with self._lock:
            if self._console is not None:
                self._console(line)
            else:
                stream = sys.stderr if err else sys.stdout
                print(line, file=stream, flush=True)

    def start(self, specs: list[NodeSpec], command: Command, stop: threading.Event) -> None:
        env = {**os.environ, "ROBOT_RL_LAUNCH": "1", "PYTHONUNBUFFERED": "1"}
        labels: dict[str, int] = {}
        for spec in specs:
            if stop.is_set():
                return
            base = spec.name or spec.exec
            labels[base] = labels.get(base, 0) + 1
            label = base if labels[base] == 1 else f"{base}-{labels[base]}"
            argv = command(spec)
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    start_new_session=True,  # Ctrl-C reaches the launcher, which forwards it
                )
            except OSError as e:
                self.out(f"[launch] could not start {label}: {e}", err=True)
                self.failed = True
                continue
            pumps = [
                threading.Thread(target=_pump, args=(pipe, f"[{label}]", write), daemon=True)
                for pipe, write in (
                    (proc.stdout, self.out),
                    (proc.stderr, lambda line: self.out(line, err=True)),
                )
            ]
            for pump in pumps:
                pump.start()
            self.nodes.append(_Node(label, proc, pumps))
            self.out(f"[launch] started {label} (pid {proc.pid}): {' '.join(argv)}")

    def poll(self) -> bool:
        """Report nodes that exited on their own; whether any node still runs."""
        for node in self.nodes:
            if not node.running() and not node.reported:
                node.reported = True
                left = sum(n.running() for n in self.nodes)
                if node.exit_code == 0:
                    what = "finished cleanly"
                else:
                    what = f"died ({_describe(node.exit_code)})"
                    self.failed = True
                self.out(
                    f"[launch] {node.label} (pid {node.proc.pid}) {what}; {left} still running"
                )
        return any(n.running() for n in self.nodes)

    def _wait(self, timeout: float) -> bool:
        """Wait until every node exited, ``timeout`` passed or another signal came."""
        deadline, signals = time.monotonic() + timeout, self.signals
        while time.monotonic() < deadline and self.signals == signals:
            if not any(n.running() for n in self.nodes):
                return True
            time.sleep(0.02)
        return not any(n.running() for n in self.nodes)

    def shutdown(self) -> None:
        self.poll()
        for node in self.nodes:
            node.reported = True  # exits from here on are answers to our signals
        running = [n for n in self.nodes if n.running()]
        if running:
            self.out(f"[launch] stopping {', '.join(n.label for n in running)} (SIGINT)")
            for node in running:
                node.signal(signal.SIGINT)
            steps = ((signal.SIGTERM, self.timeouts[0]), (signal.SIGKILL, self.timeouts[1]))
            for sig, wait_s in steps:
                if self._wait(wait_s):
                    break
                late = [n for n in running if n.running()]
                names = ", ".join(n.label for n in late)
                self.out(f"[launch] {names} still running after {wait_s:g} s: sending {sig.name}")
                self.failed = True
                for node in late:
                    node.signal(sig)
            for node in running:
                node.proc.wait()
                node.running()
            bad = [n for n in running if n.exit_code not in _STOPPED_BY_SIGINT]
            if bad and not self.failed:
                self.failed = True
                codes = ", ".join(f"{n.label}: {_describe(n.exit_code)}" for n in bad)
                self.out(f"[launch] unclean stop ({codes})", err=True)
        for node in self.nodes:
            for pump in node.pumps:
                pump.join(timeout=1.0)  # a grandchild may still hold the pipe open


def run_launch(
    path: str | Path,
    overrides: Mapping[str, str] | None = None,
    *,
    console: Console | None = None,
    command: Command = node_command,
    stop: threading.Event | None = None,
    sigterm_timeout: float = 5.0,
    sigkill_timeout: float = 5.0,
) -> int:
    """Start every node of launch file ``path`` and supervise them until they exit or a signal.

    Args:
        path: launch XML or YAML file.
        overrides: launch arguments from the command line (``name:=value``).
        console: receives every output line (default: node stdout to stdout, stderr to stderr,
            launch messages to stdout).
        command: the argv that runs one node (tests substitute small scripts).
        stop: setting it stops the launch like SIGINT (for callers outside the main thread,
            where signal handlers cannot be installed).
        sigterm_timeout: seconds from SIGINT to SIGTERM during shutdown.
        sigkill_timeout: seconds from SIGTERM to SIGKILL.

    Returns:
        0 if every node finished cleanly or stopped on SIGINT, 1 if a node died, could not
        start, or needed SIGTERM/SIGKILL.
    """
    specs = parse_launch(path, overrides)
    if not specs:
        raise ConfigError(f"launch file {path} starts no nodes")
    if stop is None:
        stop = threading.Event()
    launch = _Launch(console, sigterm_timeout, sigkill_timeout)

    def on_signal(signum: int, frame: object) -> None:
        launch.signals += 1
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        launch.start(specs, command, stop)
        while launch.poll() and not stop.is_set():
            stop.wait(0.05)
        if not stop.is_set():
            launch.out("[launch] all nodes have exited")
    finally:
        launch.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    return 1 if launch.failed else 0
