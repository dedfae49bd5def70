"""Benchmark: trainings side by side (``reproduce --jobs N``) against one at a time.

Run as ``python -m bench.bench_side_by_side [--steps 60] [--repeats 3]``. Each variant runs the
faithful step (``bench_training.step_fn``: the faithful CNN, the trainer's loss and optimiser,
batch 128) in fresh spawned processes, on random images (a step's cost does not depend on its
pixels), in alternating repeats; each figure is the median of the repeats with the min-max
spread beside it:

- alone, 1 thread: one process at one torch thread (``--jobs 1`` under OMP_NUM_THREADS=1);
- alone, all threads: one process with a thread per core (``--jobs 1`` by default);
- side by side: a process per core at one thread each, released together by a barrier; the
  figure is the sum of their images/s (``--jobs <cores>``).

The ratios side by side / alone are the factors by which ``--jobs <cores>`` shortens the wall
time of a study whose runs are equally long (the report's are not: model 1 and custom 2 train
120 and 140 epochs, the others 20 and 80, so the gain over the whole study is smaller).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics

import torch

from .bench_training import BATCH, _images_per_s, our_batches, step_fn
from .machine import cores, describe, recorded, spread

IMAGES = 4096  # random uint8 images (1, 28, 28): 32 batches, cycled


def _worker(threads: int, steps: int, barrier, results) -> None:
    """One process's images/s over ``steps`` faithful steps at ``threads`` threads."""
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (IMAGES, 1, 28, 28), dtype=torch.uint8, generator=generator)
    step = step_fn()
    if barrier is not None:
        barrier.wait()  # the processes time their steps together
    results.put(_images_per_s(our_batches(images), step, steps))


def images_per_s(processes: int, threads: int, steps: int) -> float:
    """The summed images/s of ``processes`` spawned processes at ``threads`` threads each."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    barrier = context.Barrier(processes) if processes > 1 else None
    workers = [
        context.Process(target=_worker, args=(threads, steps, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    total = sum(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n = cores()
    variants = {
        "alone, 1 thread": (1, 1),
        f"alone, {n} threads": (1, n),
        f"side by side, {n} x 1 thread": (n, 1),
    }
    print(f"trainings side by side (faithful CNN, batch {BATCH}, {args.steps} steps): {describe()}")
    results: dict[str, list[float]] = {name: [] for name in variants}
    with recorded("side by side", own=n):
        for _ in range(args.repeats):
            for name, (processes, threads) in variants.items():
                results[name].append(images_per_s(processes, threads, args.steps))
    side = statistics.median(results[f"side by side, {n} x 1 thread"])
    for name, rates in results.items():
        ratio = side / statistics.median(rates)
        print(f"  {name:<28} {spread(rates, '{:.0f}')} images/s; side by side / this: {ratio:.2f}x")


if __name__ == "__main__":
    main()
