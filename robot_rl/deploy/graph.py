"""Several nodes in one process on a manual clock, messages delivered at once: the ROS graph
without a transport, deterministic, for tests and for telling the node logic's effects apart
from the transport's."""

from __future__ import annotations

from collections import deque
from typing import Any

from robot_rl.deploy.node import ManualClock, NodeLogic
from robot_rl.deploy.rosargs import NodeOptions


class LocalGraph:
    """Args:
    nodes: ``(logic, options)`` pairs; the logic should run on ``clock``.
    clock: the shared manual clock.
    """

    def __init__(self, nodes: list[tuple[NodeLogic, NodeOptions]], clock: ManualClock) -> None:
        self.clock = clock
        self.nodes = nodes
        self.subscribers: dict[str, list[tuple[NodeLogic, str]]] = {}
        self.published: dict[str, list[Any]] = {}
        """Every message published, by fully qualified topic."""
        self.topics: list[dict[str, str]] = []
        for logic, opts in nodes:
            names = {k: opts.resolve(p.topic) for k, p in logic.publishers.items()}
            for key, port in logic.subscriptions.items():
                self.subscribers.setdefault(opts.resolve(port.topic), []).append((logic, key))
            self.topics.append(names)
        self.due = [
            {key: clock.now() + period for key, period in logic.timers.items()}
            for logic, _ in nodes
        ]
        self.active = [False] * len(nodes)

    def start(self) -> None:
        for i, (logic, _) in enumerate(self.nodes):
            self.active[i] = True
            self._deliver(i, logic.activate())

    def publish(self, topic: str, msg: Any) -> None:
        """Inject a message from outside (a test, an operator)."""
        self._route([(topic, msg)])

    def run_until(self, t_end: float) -> None:
        """Fire every timer due up to ``t_end`` in time order, delivering what they publish."""
        while True:
            i, key, due = min(
                ((i, k, d) for i, dues in enumerate(self.due) for k, d in dues.items()),
                key=lambda x: x[2],
                default=(None, None, None),
            )
            if i is None or due > t_end:
                break
            self.clock.t = max(self.clock.t, due)
            self.due[i][key] = due + self.nodes[i][0].timers[key]
            self._deliver(i, self.nodes[i][0].tick(key))
        self.clock.t = max(self.clock.t, t_end)

    def _deliver(self, i: int, out) -> None:
        self._route([(self.topics[i][key], msg) for key, msg in out])

    def _route(self, items: list[tuple[str, Any]]) -> None:
        queue = deque(items)
        while queue:
            topic, msg = queue.popleft()
            self.published.setdefault(topic, []).append(msg)
            for logic, key in self.subscribers.get(topic, []):
                j = next(n for n, (lg, _) in enumerate(self.nodes) if lg is logic)
                out = logic.handle(key, msg)
                queue.extend((self.topics[j][k], m) for k, m in out)
