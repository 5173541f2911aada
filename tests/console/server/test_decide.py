"""ingest.decide: exactly once per (device, epoch, seq), deltas in order (pure)."""

from __future__ import annotations

from console.server.ingest import decide


def test_the_next_delta_is_applied() -> None:
    assert decide("e1", 4, None, "e1", 5, "delta").result == "applied"


def test_a_seen_seq_is_a_duplicate() -> None:
    outcome = decide("e1", 4, None, "e1", 4, "delta")
    assert (outcome.result, outcome.seq) == ("duplicate", 4)


def test_an_older_seq_is_a_duplicate() -> None:
    assert decide("e1", 4, None, "e1", 2, "snapshot").result == "duplicate"


def test_a_gap_needs_a_snapshot() -> None:
    outcome = decide("e1", 4, None, "e1", 6, "delta")
    assert (outcome.result, outcome.seq) == ("need_snapshot", 4)


def test_a_heartbeat_after_a_gap_needs_a_snapshot() -> None:
    assert decide("e1", 4, None, "e1", 9, "heartbeat").result == "need_snapshot"


def test_a_snapshot_may_jump_ahead() -> None:
    assert decide("e1", 4, None, "e1", 9, "snapshot").result == "applied"


def test_a_delta_in_a_new_epoch_needs_a_snapshot() -> None:
    assert decide("e1", 4, None, "e2", 1, "delta").result == "need_snapshot"


def test_a_snapshot_starts_a_new_epoch() -> None:
    assert decide("e1", 4, None, "e2", 1, "snapshot").result == "applied"


def test_the_first_report_of_a_device_must_be_a_snapshot() -> None:
    assert decide(None, 0, None, "e1", 1, "delta").result == "need_snapshot"


def test_a_replay_from_an_earlier_epoch_is_a_duplicate() -> None:
    outcome = decide("e2", 3, 7, "e1", 1, "snapshot")
    assert (outcome.result, outcome.seq) == ("duplicate", 7)
