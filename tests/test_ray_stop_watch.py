"""The Ray task's stop watch asks the board from its own thread, never from the task's thread: a
task blocked in ``ray.get`` on its main thread lends its CPU back to the node, which then starts
another cell beside it (seen in benchmarks/cluster_overhead.py: two 1-CPU cells at once on a
1-CPU node). No cluster needed: ``ray.get`` is replaced by a recorder."""

from __future__ import annotations

import threading
import time

import pytest

ray = pytest.importorskip("ray")

from memcomp.exec import ray_executor  # noqa: E402


class FakeBoard:
    """``board.stopping.remote()`` returns the flag itself; the fake ``ray.get`` unwraps it."""

    def __init__(self) -> None:
        self.flag = False
        board = self

        class Stopping:
            def remote(self) -> bool:
                return board.flag

        self.stopping = Stopping()


def test_polls_off_the_task_thread_and_stop_when_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []

    def fake_get(ref: bool, timeout: float | None = None) -> bool:
        threads.append(threading.current_thread())
        return ref

    monkeypatch.setattr(ray, "get", fake_get)
    monkeypatch.setattr(ray_executor, "STOP_POLL_S", 0.05)
    board = FakeBoard()
    with ray_executor._StopWatch(board) as watch:
        assert threads, "the first answer is awaited before the cell starts"
        assert not watch.is_set()
        board.flag = True
        deadline = time.monotonic() + 5
        while not watch.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watch.is_set()
    assert threading.main_thread() not in threads and len(threads) >= 2
    assert not watch.thread.is_alive()  # ended with the task (Ray reuses worker processes)


def test_the_watch_thread_ends_with_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray, "get", lambda ref, timeout=None: False)
    monkeypatch.setattr(ray_executor, "STOP_POLL_S", 0.05)
    with ray_executor._StopWatch(FakeBoard()) as watch:
        time.sleep(0.2)
    assert not watch.thread.is_alive() and not watch.is_set()
