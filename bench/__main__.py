"""``python -m bench`` (``make bench``): every benchmark, each printing side-by-side ratios.

``--time-to-quality`` adds the long time-to-quality comparison (minutes to hours). The sampler
quality comparison needs a trained run: ``python -m bench.bench_sampler_quality RUN_DIR``. The
GPU figures come from one prepared script, ``bash bench/gpu.sh`` (docs/benchmarks.md#gpu). Every
bench prints the load average around its measurement and warns when the machine was busy
(``bench/machine.py``).
"""

from __future__ import annotations

import sys

from . import bench_networks, bench_pixel_swap, bench_sampling, bench_side_by_side, bench_training


def main() -> None:
    bench_pixel_swap.main([])
    bench_training.main([])
    bench_networks.main([])
    bench_sampling.main([])
    bench_side_by_side.main([])
    if "--time-to-quality" in sys.argv:
        from . import bench_time_to_quality

        bench_time_to_quality.main([])


if __name__ == "__main__":
    main()
