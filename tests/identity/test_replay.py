from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import ReplayError
from ruvector_edge.identity import NonceCache, ReplayGuard


@given(st.lists(st.integers(min_value=0, max_value=300), max_size=200), st.integers(1, 64))
def test_window_accepts_each_sequence_at_most_once_matching_a_reference(
    seqs: list[int], window: int
) -> None:
    guard = ReplayGuard(window=window)
    seen: set[int] = set()
    highest = -1
    for seq in seqs:
        expected_ok = seq not in seen and (seq > highest or highest - seq < window)
        try:
            guard.check_and_update(seq)
            ok = True
        except ReplayError:
            ok = False
        assert ok == expected_ok
        if ok:
            seen.add(seq)
            highest = max(highest, seq)


def test_window_memory_is_bounded() -> None:
    guard = ReplayGuard(window=128)
    for seq in range(0, 100_000, 7):
        guard.check_and_update(seq)
    assert guard._bitmap.bit_length() <= 128


def test_timestamp_skew_in_both_directions() -> None:
    now = 1_000_000
    guard = ReplayGuard(max_skew_ms=5_000, clock=lambda: now)
    guard.check_timestamp(now - 5_000)
    guard.check_timestamp(now + 5_000)
    with pytest.raises(ReplayError, match="behind"):
        guard.check_timestamp(now - 5_001)
    with pytest.raises(ReplayError, match="ahead of"):
        guard.check_timestamp(now + 5_001)


def test_nonce_cache_refuses_replays_and_stays_bounded() -> None:
    clock = [10_000_000]
    cache = NonceCache(capacity=4, max_skew_ms=1_000, clock=lambda: clock[0])
    for i in range(10):
        nonce = i.to_bytes(16, "big")
        cache.check(nonce, clock[0] + i)
        cache.add(nonce, clock[0] + i)
    assert len(cache) == 4
    with pytest.raises(ReplayError, match="already used"):
        cache.check((9).to_bytes(16, "big"), clock[0] + 9)
    # An evicted nonce is refused by the raised floor, not silently re-accepted.
    with pytest.raises(ReplayError):
        cache.check((0).to_bytes(16, "big"), clock[0])
    clock[0] += 5_000  # everything is now outside the skew window
    with pytest.raises(ReplayError, match="differs from local time"):
        cache.check((9).to_bytes(16, "big"), clock[0] - 5_000)


def test_timestamp_window_matches_check_timestamp() -> None:
    guard = ReplayGuard(max_skew_ms=1_000, clock=lambda: 50_000)
    oldest, newest = guard.timestamp_window()
    assert (oldest, newest) == (49_000, 51_000)
    for ts in (oldest, newest, 50_000):
        guard.check_timestamp(ts)
    for ts in (oldest - 1, newest + 1):
        with pytest.raises(ReplayError):
            guard.check_timestamp(ts)
