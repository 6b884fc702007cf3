"""A small progress bar on stderr: one line per epoch, redrawn in place on a terminal (at most 5 times a second), and
written once at the end of the epoch otherwise (logs stay readable)."""
from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "format_seconds"]


def format_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ProgressBar:
    """``epoch 2/10 [######----] 45/90 loss 1.234 812 img/s ETA 0:12``"""

    def __init__(self, total: int, desc: str, stream: TextIO | None = None, enabled: bool = True, width: int = 24,
                 start: int = 0):
        self.total, self.desc, self.width = total, desc, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.n, self.start_n, self.images = start, start, 0
        self.t0 = time.perf_counter()
        self.last_draw = 0.0
        self.loss = float("nan")

    def update(self, images: int, loss: float | None = None) -> None:
        self.n += 1
        self.images += images
        if loss is not None:
            self.loss = loss
        now = time.perf_counter()
        if self.tty and (now - self.last_draw > 0.2 or self.n == self.total):
            self.last_draw = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    @property
    def rate(self) -> float:
        dt = time.perf_counter() - self.t0
        return self.images / dt if dt > 0 else 0.0

    def line(self) -> str:
        frac = self.n / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        dt = time.perf_counter() - self.t0
        done = self.n - self.start_n
        eta = dt / done * (self.total - self.n) if done else 0.0
        return (f"{self.desc} [{'#' * filled}{'-' * (self.width - filled)}] {self.n}/{self.total} "
                f"loss {self.loss:.4f} {self.rate:.0f} img/s ETA {format_seconds(eta)}")

    def close(self, suffix: str = "") -> None:
        if not self.enabled:
            return
        self.stream.write(("\r" if self.tty else "") + self.line() + (f"  {suffix}" if suffix else "") + "\n")
        self.stream.flush()
