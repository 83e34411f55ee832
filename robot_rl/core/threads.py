"""Thread control for small batched tensor math next to a threaded simulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count.

    The task layer's tensors are small ((N, ≤ 40) for N in the hundreds): splitting them across
    OpenMP threads costs more than it saves, and when the simulator's own worker threads (or other
    processes) hold the cores, every parallel region waits on descheduled threads. Measured here,
    2 cores under load: a (256, 6, 6) damped-least-squares solve took 26 ms with 2 threads and
    0.6 ms with 1.
    """
    prev = torch.get_num_threads()
    if n == prev:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
