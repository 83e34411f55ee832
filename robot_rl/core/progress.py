"""Progress bars for long work: a rich bar with counts, elapsed time and ETA."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(*extra: str) -> Progress:
    """A rich :class:`Progress` showing ``description  bar  n/total  elapsed  eta  <extra>``;
    each ``extra`` names a task field (``bar.update(job, loss=0.1)``) shown after the ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *(TextColumn(f"{{task.fields[{name}]}}") for name in extra),
    )
