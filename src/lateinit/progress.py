"""Progress bars for long work: creating, loading and saving parameters.

``initialize``, ``load_parameters`` and ``save_parameters`` take ``progress=``:

- ``None`` (the default): automatic. A bar appears on stderr only when stderr is a
  terminal and the work has already taken more than :data:`AUTO_DELAY` seconds, so
  short work and logs/pipes stay silent.
- ``True``: a bar on stderr from the start (also when stderr is not a terminal).
- ``False``: never.

Nothing is ever written to stdout. The bar is `rich`'s (a dependency already), counting
bytes. A leaf module: it imports nothing of lateinit.

Example:
    >>> from lateinit.progress import Progress
    >>> with Progress(3 * 2**20, "loading", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.advance(2**20)
    >>> bar.done
    3145728
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["AUTO_DELAY", "Progress"]

#: Seconds of work after which an automatic bar appears (on a terminal).
AUTO_DELAY = 2.0


class Progress:
    """A byte-counting progress bar on stderr (see the module docstring for ``enabled``).

    Args:
        total: the number of bytes the work will go through, or a function returning
            the bytes still to go (called only if a bar is shown; the bytes counted by
            then are added).
        description: what is being done (``"initializing"``, ``"loading net.safetensors"``).
        enabled: ``None`` automatic, ``True`` always, ``False`` never.
    """

    def __init__(
        self, total: int | Callable[[], int], description: str, enabled: bool | None = None
    ) -> None:
        if enabled is not None and not isinstance(enabled, bool):
            raise TypeError(f"progress must be True, False or None (automatic), got {enabled!r}")
        self._total = total
        self.description = description
        self.enabled = enabled
        self.done = 0
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    @property
    def total(self) -> int:
        """The number of bytes the work goes through (a callable given as ``total``, which
        returns the bytes still to go, is called the first time this is needed: only when
        a bar is shown; the bytes already counted are added to it)."""
        if callable(self._total):
            self._total = self.done + self._total()
        return max(int(self._total), 0)

    def __enter__(self) -> Progress:
        if self.enabled:
            self._show()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            if exc[0] is None:
                self._bar.update(self._task, completed=self.total)
            self._bar.stop()
            self._bar = None

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` more bytes done."""
        self.done += int(nbytes)
        if self._bar is None and self.enabled is None and self._automatic_due():
            self._show()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)

    def _automatic_due(self) -> bool:
        if time.monotonic() - self._started < AUTO_DELAY:
            return False
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._task = self._bar.add_task(self.description, total=self.total, completed=self.done)
        self._bar.start()
