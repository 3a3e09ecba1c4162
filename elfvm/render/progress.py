"""Progress on the terminal: one status line on stderr, for every long run (trace and program).

Only when a person watches: stderr (and, for a program, stdout) is a terminal, not --quiet, not
--format json. The line is redrawn at most every PERIOD seconds and cleared at the end; whoever
writes something else to the terminal meanwhile (the guest's live output) clears it first
(`StatusLine.writing`), and the next update draws it again below.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from contextlib import contextmanager

PERIOD = 0.25                        # seconds between redraws: four a second at most


def on_terminal(quiet: bool, fmt: str = "table", *, stdout_too: bool = False) -> bool:
    """Whether progress should be shown."""
    if quiet or fmt == "json":
        return False
    streams = (sys.stderr, sys.stdout) if stdout_too else (sys.stderr,)
    return all(getattr(s, "isatty", lambda: False)() for s in streams)


class StatusLine:
    """One line of progress on stderr (safe to update from another thread)."""

    def __init__(self, period: float = PERIOD):
        self.stream = sys.stderr
        self.period = period
        self.shown = False
        self.last = 0.0
        self.lock = threading.Lock()

    def show(self, text: str) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last < self.period:
                return
            self.last = now
            width = max(shutil.get_terminal_size((80, 24)).columns - 1, 10)
            self.stream.write("\r" + text[:width] + "\x1b[K")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        with self.lock:
            self._erase()

    @contextmanager
    def writing(self):
        """Around other output to the terminal: the line is erased first, and not redrawn
        until that output is written."""
        with self.lock:
            self._erase()
            yield

    def _erase(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def trace_text(done: int, total: int | None) -> str:
    """`trace: 12 MiB of 40 MiB (30%)`: the bytes of the traces read so far."""
    from elfvm.units import human_size

    if total:
        return f"trace: {human_size(done)} of {human_size(total)} ({100 * done // total}%)"
    return f"trace: {human_size(done)} read"


def program_text(instructions: int | None, faults: int) -> str:
    """`running: 12,345,678 instructions, 219 page faults so far`."""
    ins = f"{instructions:,} instructions" if instructions is not None else "instructions not counted"
    return f"running: {ins}, {faults:,} page faults so far"
