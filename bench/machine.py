"""What every benchmark says about the machine it ran on: cores, threads and the load around it.

Benchmark ratios are measured side by side, so machine noise hits every variant alike, but a
machine busy with other work still distorts them (a thread of ours waits for a core while its
partner runs, and the vectorised code loses more than the loop; see docs/benchmarks.md). Each
bench therefore records the 1-minute load average (``os.getloadavg``) before and after its
measurement and prints a warning line when the machine was busy.

The rule: the run counts as **busy** when the larger of the two readings exceeds
``own + 0.5 x cores``, where ``own`` is the number of threads (or processes) the bench itself keeps
running. The load average counts the bench's own threads too, so ``own`` is what a quiet machine
shows while the bench runs; the extra half of the cores is the room left for background noise
(an editor, a shell) before the figures are not to be trusted. On a 2-core machine running a
2-thread bench the line is 3.0.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

BUSY_FRACTION = 0.5  # the room for background load, as a fraction of the cores


def cores() -> int:
    """Logical CPUs this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def busy_threshold(n_cores: int, own: float) -> float:
    """The 1-minute load average above which a run counts as busy: ``own + 0.5 x n_cores``."""
    return own + BUSY_FRACTION * n_cores


@dataclass
class LoadRecord:
    """The 1-minute load average before and after one bench, and the rule it is judged by."""

    name: str
    n_cores: int
    own: float  # threads or processes the bench itself keeps busy
    before: float
    after: float | None = None

    @property
    def threshold(self) -> float:
        return busy_threshold(self.n_cores, self.own)

    @property
    def peak(self) -> float:
        """The larger of the two readings (the one judged)."""
        return max(self.before, self.after if self.after is not None else 0.0)

    @property
    def busy(self) -> bool:
        return self.peak > self.threshold

    def line(self) -> str:
        """One line for the bench's output: the readings and the rule."""
        after = "?" if self.after is None else f"{self.after:.2f}"
        return (
            f"  load ({self.name}): 1-min load average {self.before:.2f} before, {after} after; "
            f"busy above {self.threshold:.1f} (= {self.own:g} own + {BUSY_FRACTION:g} x "
            f"{self.n_cores} cores)"
        )

    def warning(self) -> str | None:
        """A warning line when the machine was busy, else None."""
        if not self.busy:
            return None
        return (
            f"  WARNING ({self.name}): the machine was busy (load {self.peak:.2f} > "
            f"{self.threshold:.1f}): other processes took cores, so these figures are low "
            "and their ratios distorted; measure again on a quiet machine"
        )


def load_average() -> float:
    """The 1-minute load average, or 0.0 where the OS has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


@contextlib.contextmanager
def recorded(name: str, own: float | None = None) -> Iterator[LoadRecord]:
    """Record the load around a bench's measurement; print the readings and, if busy, a warning.

    ``own``: threads or processes the bench keeps busy (default: torch's thread count).
    """
    record = LoadRecord(name, cores(), own or torch.get_num_threads(), load_average())
    try:
        yield record
    finally:
        record.after = load_average()
        print(record.line())
        warning = record.warning()
        if warning:
            print(warning)


def describe() -> str:
    """One line naming the machine: CPU, cores, torch build and threads."""
    return (
        f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", {cores()} cores, torch {torch.__version__} "
        f"({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} torch threads"
    )


def spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    """``median (min-max)`` of repeated measurements, e.g. ``154 (140-160)``."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)} ({fmt.format(low)}-{fmt.format(high)})"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
