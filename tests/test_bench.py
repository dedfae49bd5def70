"""The benchmarks' own rules: when a machine counts as busy; no loop is shown above its ceiling."""

from __future__ import annotations

import torch

from bench.bench_training import _images_per_s, share_of_ceiling, step_fn, thread_settings
from bench.machine import LoadRecord, busy_threshold, spread


def test_busy_threshold_is_own_threads_plus_half_the_cores():
    assert busy_threshold(2, own=2) == 3.0
    assert busy_threshold(16, own=4) == 12.0


def test_a_run_is_busy_when_either_reading_exceeds_the_threshold():
    quiet = LoadRecord("x", n_cores=2, own=2, before=0.4, after=2.9)
    busy_after = LoadRecord("x", n_cores=2, own=2, before=0.4, after=3.1)
    busy_before = LoadRecord("x", n_cores=2, own=2, before=3.5, after=1.0)
    assert not quiet.busy and quiet.warning() is None
    assert busy_after.busy and "3.10 > 3.0" in busy_after.warning()
    assert busy_before.busy


def test_spread_is_median_min_max():
    assert spread([3.0, 1.0, 10.0]) == "3.0 (1.0-10.0)"
    assert spread([4.0, 2.0], "{:.0f}") == "3 (2-4)"


def test_a_loop_above_its_ceiling_is_a_mis_measured_ceiling_not_a_share_over_100():
    assert share_of_ceiling(50.0, 200.0) == "25.0% of ceiling"
    assert share_of_ceiling(200.0, 200.0) == "100.0% of ceiling"
    assert share_of_ceiling(220.0, 200.0) == "above the ceiling by 10.0%: ceiling mis-measured"


def test_thread_settings_are_powers_of_two_then_all_cores():
    assert thread_settings(1) == [1]
    assert thread_settings(2) == [1, 2]
    assert thread_settings(6) == [1, 2, 4, 6]
    assert thread_settings(8) == [1, 2, 4, 8]


def test_a_step_records_its_forward_backward_and_the_warm_up_steps_are_dropped():
    """The in-step ceiling candidate: one time per timed step, none from the 2 warm-up steps,
    each no longer than the step around it."""
    times: list[float] = []
    step = step_fn(fwd_bwd_seconds=times)
    x0 = torch.zeros(128, 1, 28, 28)
    rate = _images_per_s([x0] * 5, step, 3, times)
    assert len(times) == 3
    assert 0 < max(times) and 128 / min(times) >= rate
