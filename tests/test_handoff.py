"""The render's second thread (talking_head.handoff.InOrder): order, back-pressure, failures, stopping."""
from __future__ import annotations

import threading

import pytest
from conftest import live_threads

from talking_head.handoff import InOrder


def test_every_item_is_worked_once_in_order_on_another_thread():
    seen, threads = [], set()

    def work(item):
        seen.append(item)
        threads.add(threading.get_ident())

    with InOrder(work, depth=3, name="t-order") as q:
        for i in range(500):
            q.put(i)
    assert seen == list(range(500))
    assert threads and threading.get_ident() not in threads
    assert not live_threads("t-order")


def test_put_waits_while_depth_items_are_waiting():
    release = threading.Event()
    started = threading.Event()

    def work(item):
        started.set()
        release.wait()

    q = InOrder(work, depth=2, name="t-depth")
    q.put(0)
    started.wait(5)  # item 0 is being worked, the queue is empty
    q.put(1)
    q.put(2)
    third = threading.Thread(target=q.put, args=(3,))
    third.start()
    third.join(0.3)
    assert third.is_alive(), "a third waiting item was taken past depth=2"
    release.set()
    third.join(5)
    assert not third.is_alive()
    q.finish()


def test_a_failure_comes_back_to_the_caller_and_nothing_after_it_is_worked():
    seen = []

    def work(item):
        if item == 3:
            raise OSError("disk full")
        seen.append(item)

    q = InOrder(work, depth=1, name="t-fail")
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):
            q.put(i)
        q.finish()
    assert seen == [0, 1, 2]
    with pytest.raises(RuntimeError, match="earlier item failed"):
        q.put(200)
    q.abandon()
    assert not live_threads("t-fail")


def test_a_failure_in_the_last_items_comes_back_from_finish():
    def work(item):
        if item == "last":
            raise ValueError("bad frame")

    q = InOrder(work, depth=4, name="t-last")
    q.put("first")
    q.put("last")
    with pytest.raises(ValueError, match="bad frame"):
        q.finish()
    assert not live_threads("t-last")


def test_an_error_in_the_callers_block_drops_what_waits_and_stops_the_thread():
    release = threading.Event()
    seen = []

    def work(item):
        release.wait()
        seen.append(item)

    def release_once_abandoned():  # (so the test does not race the thread: item 0 ends after abandon began)
        for _ in range(500):  # (at most 5 s: a broken abandon then fails the test instead of hanging it)
            if q._dropping:
                break
            threading.Event().wait(0.01)
        release.set()

    with pytest.raises(KeyError), InOrder(work, depth=3, name="t-abandon") as q:
        for i in range(4):
            q.put(i)
        threading.Thread(target=release_once_abandoned, daemon=True).start()
        raise KeyError("cancelled")
    assert not live_threads("t-abandon")
    assert seen == [0], "items waiting when the caller failed were still worked"
    with pytest.raises(RuntimeError, match="ended"):
        q.put(9)


def test_depth_must_be_positive():
    with pytest.raises(ValueError):
        InOrder(lambda item: None, depth=0)


def test_ctrl_c_while_finish_waits_drops_what_waits_and_the_thread_still_ends():
    """An interrupt while the caller waits for the last items (the queue full, the worker busy) must not leave
    the thread waiting for ever, nor let it work the rest after the caller has gone."""
    import signal

    release = threading.Event()
    seen = []

    def work(item):
        release.wait(10)
        seen.append(item)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    q = InOrder(work, depth=1, name="t-interrupt")
    q.put(0)
    while q._queue.qsize():  # (item 0 taken: the worker is inside work())
        threading.Event().wait(0.01)
    q.put(1)  # the queue is full now, so finish() waits to put its stop marker
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            q.finish()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    release.set()
    q._thread.join(5)
    assert not live_threads("t-interrupt"), "the thread outlived an interrupted finish()"
    assert seen == [0], "an item waiting when the caller was interrupted was still worked"
    q.abandon()  # (ending it again is harmless)
