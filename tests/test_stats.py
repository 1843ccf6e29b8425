"""Counters and histograms: a fold (in bulk, in C) gives the totals of counting one by one."""

from __future__ import annotations

import bisect
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from mlcache import stats
from mlcache.stats import BUCKETS, Counters, Histogram

DURATIONS = st.floats(allow_nan=False, min_value=-1.0)  # (perf_counter deltas: never NaN)


@given(st.lists(st.one_of(DURATIONS, st.sampled_from(BUCKETS)), max_size=300), st.integers(1, 50))
@settings(max_examples=200, deadline=None)
def test_histogram_folds_as_one_by_one(values, fold_at):
    counts, total = [0] * len(BUCKETS), 0.0
    for value in values:
        counts[bisect.bisect_left(BUCKETS, value)] += 1
        total += value
    old, stats._FOLD_AT = stats._FOLD_AT, fold_at  # fold many times, at odd places
    try:
        histogram = Histogram()
        for value in values:
            histogram.observe(value)
        snapshot = histogram.snapshot()
    finally:
        stats._FOLD_AT = old
    running, cumulative = 0, {}
    for bound, count in zip(BUCKETS, counts):
        running += count
        cumulative[bound] = running
    assert snapshot["buckets"] == cumulative and snapshot["count"] == len(values)
    assert snapshot["sum"] == total  # (added in the order observed)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 5)), max_size=200))
def test_counters_add_amounts(updates):
    counters = Counters("a")
    expected = {"a": 0}
    for name, amount in updates:
        counters.inc(name, amount)
        if amount:
            expected[name] = expected.get(name, 0) + amount
    assert counters.snapshot() == expected


def test_counts_are_exact_across_threads():
    counters, histogram = Counters(), Histogram()

    def work():
        for i in range(20_000):
            counters.inc("hits")
            counters.inc("misses", 3)
            histogram.observe(i % 3 * 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters.snapshot() == {"hits": 80_000, "misses": 240_000}
    assert histogram.snapshot()["count"] == 80_000
