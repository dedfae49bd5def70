"""Benchmark: vectorised pixel swap against the original's per-pixel loop.

Run as ``python -m bench.bench_pixel_swap [--batch 64] [--repeats 5] [--threads N]``. Two cases,
timed side by side in one run, in alternating repeats (median, with the min-max spread):

- per-image fields: every image has its own field, so the loop must do batch x 784 swaps, one
  image at a time (what the original would need to give each image its own field);
- shared field: one field for the whole batch, so the loop does 784 swaps of the whole batch at
  once (what the original did).

The vectorised time includes computing the fields from the keys; the loop is handed its offsets
precomputed, which flatters it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from diffusiontools.diffusion.degradations.pixel_swap import (
    PixelSwap,
    swap_offsets,
    swap_pixels_reference,
)

from .machine import describe, recorded, spread


def _ms(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    """Wall time of one call of ``fn`` in ms, and its output."""
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1e3, out


def _loop_per_image(x: torch.Tensor, dr: torch.Tensor, dc: torch.Tensor) -> torch.Tensor:
    """The original's loop, one image at a time: the only way it can give each its own field."""
    return torch.stack([swap_pixels_reference(x[b], dr[b], dc[b]) for b in range(len(x))])


def _loop_shared(x: torch.Tensor, dr: torch.Tensor, dc: torch.Tensor) -> torch.Tensor:
    """The original's loop as it ran: image 0's field swaps the whole batch at once."""
    return swap_pixels_reference(x, dr[0], dc[0])


def bench(batch: int, repeats: int, level: float = 0.2) -> list[str]:
    """Time both cases on a random batch; return one report line per case.

    The loop and the vectorised version alternate, ``repeats`` times each, so that a busy spell
    of the machine hits both; each repeat gives one speed-up, and the line reports the median
    times and the median speed-up with its min-max spread.
    Raises AssertionError if the two implementations disagree (they must be bit-identical).
    """
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    levels = torch.full((batch,), level)
    swap = PixelSwap()
    lines = []
    for case, key, loop in (
        ("per-image fields", torch.arange(batch), _loop_per_image),
        ("shared field", torch.zeros(batch, dtype=torch.int64), _loop_shared),
    ):
        dr, dc = swap_offsets(levels, key, (28, 28))  # (B, 28, 28) each
        swap(x, levels, key)  # warm-up
        loop_ms, fast_ms = [], []
        for _ in range(repeats):
            ms, expected = _ms(partial(loop, x, dr, dc))
            loop_ms.append(ms)
            ms, got = _ms(partial(swap, x, levels, key))
            fast_ms.append(ms)
            assert torch.equal(got, expected), f"vectorised pixel swap disagrees ({case})"
        speedups = [a / b for a, b in zip(loop_ms, fast_ms, strict=True)]
        lines.append(
            f"pixel_swap batch={batch}, {case}: reference loop {statistics.median(loop_ms):.1f} ms,"
            f" vectorised {statistics.median(fast_ms):.2f} ms, speed-up "
            f"{spread(speedups, '{:.0f}')}x (median (min-max) of {repeats} alternating repeats)"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run the benchmark, print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per batch")
    parser.add_argument(
        "--repeats", type=int, default=5, help="alternating timed calls per case (median)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(describe())
    with recorded("pixel swap"):
        for line in bench(args.batch, args.repeats):
            print(line)


if __name__ == "__main__":
    main()
