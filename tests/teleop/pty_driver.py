"""Run ``robot-rl`` in a pseudo-terminal (as its controlling terminal) and script keystrokes."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class PtyProcess:
    """``python -m robot_rl.cli.main *args`` with a pty as stdin/stdout/stderr and ctty."""

    def __init__(self, *args: str) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # child
            os.chdir(REPO)
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "xterm"}
            os.execvpe(sys.executable, [sys.executable, "-m", "robot_rl.cli.main", *args], env)
        self.pid, self.fd = pid, fd
        self.output = ""
        self._seen = 0  # expect() searches output from here on
        self.rc: int | None = None

    def _read(self, timeout: float) -> bool:
        if not select.select([self.fd], [], [], timeout)[0]:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.output += data.decode("utf-8", "replace")
        return True

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """Wait for ``pattern`` in output produced since the last match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.output, self._seen)
            if m:
                self._seen = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                if m := rx.search(self.output, self._seen):
                    self._seen = m.end()
                    return m
                if left <= 0 or self._exited():
                    raise AssertionError(f"no {pattern!r} in output:\n{self.output[-3000:]}")

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def _exited(self) -> bool:
        if self.rc is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
        return self.rc is not None

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"still running after {timeout} s:\n{self.output[-3000:]}")
            self._read(0.1)
        while self._read(0.05) and select.select([self.fd], [], [], 0)[0]:
            pass
        assert self.rc is not None
        return self.rc

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.pid, sig)
        os.waitpid(self.pid, 0)
        self.rc = -sig

    def close(self) -> None:
        if self.rc is None:
            self.kill()
        os.close(self.fd)
