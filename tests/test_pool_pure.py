"""Where a many-instance family's next instance goes (``runtime.pool.placement``: a pure decision)."""

from __future__ import annotations

from trainbox_server.runtime.pool import BRING, WAIT, placement

BIG = 100_000  # BFCL's instances per process


def test_the_first_instances_bring_the_configured_processes() -> None:
    assert placement([], [], taking=0, processes=2) == BRING
    assert placement([], [], taking=1, processes=2) == BRING  # the second of two processes
    assert placement([1], [BIG], taking=0, processes=2) == BRING  # spread before sharing


def test_a_burst_shares_the_processes_on_their_way_instead_of_bringing_its_own() -> None:
    assert placement([], [], taking=2, processes=2) == WAIT
    assert placement([1], [BIG], taking=1, processes=2) == 0  # the live one, not a third process


def test_instances_go_to_the_least_loaded_process_with_room() -> None:
    assert placement([5, 2, 7], [BIG] * 3, taking=0, processes=3) == 1
    assert placement([3, 3], [3, 4], taking=0, processes=2) == 1  # the first is full


def test_an_empty_live_process_is_used_before_bringing_another() -> None:
    assert placement([0], [BIG], taking=0, processes=2) == 0


def test_full_processes_bring_one_more_beyond_the_configured_count() -> None:
    assert placement([4, 4], [4, 4], taking=0, processes=2) == BRING
    assert placement([4, 4], [4, 4], taking=1, processes=2) == WAIT  # the one on its way has room
