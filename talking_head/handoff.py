"""One background thread that does a step of work on each item, in the order the items are handed to it.

A render has two steps per frame that can overlap: the engine draws frame i+1 while frame i is pasted into
the canvas, converted for the encoder and written to it. On two cores with x264 on one of them, doing
both on one thread left the render waiting on that thread (BENCHMARKS.md, twentieth session).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_STOP = object()


class InOrder(Generic[T]):
    """``work(item)`` on one thread, item by item in the order of :meth:`put`, at most ``depth`` waiting.

    The first exception ``work`` raises comes back from the next :meth:`put` or from :meth:`finish`, and
    the items after it are dropped unworked. :meth:`abandon` stops without working what is waiting; one
    of the two must end every use (``with`` ends it with :meth:`abandon` on an exception). Interrupted
    while it waits (Ctrl-C), either one drops what is waiting and the thread ends after its current item.
    """

    def __init__(self, work: Callable[[T], None], depth: int = 2, name: str = "in-order"):
        if depth < 1:
            raise ValueError("depth must be 1 or more")
        self._work = work
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None  # the worker's failure, raised once in the caller
        self._dropping = False  # what is waiting is not worked
        self._stopping = False  # the worker ends when nothing is waiting, even without the stop marker
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failed = False  # (the worker's own flag: nothing after its failure is worked, whatever the caller does)
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopping:
                    return
                continue
            if item is _STOP:
                return
            if failed or self._dropping:
                continue
            try:
                self._work(item)
            except BaseException as e:  # noqa: BLE001  (handed to the caller's thread)
                failed = True
                self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._dropping = True
            raise error

    def put(self, item: T) -> None:
        """Hand ``item`` over; waits while ``depth`` items are waiting. Raises what an earlier item raised."""
        if self._ended or self._stopping:
            raise RuntimeError("this InOrder has ended")
        self._raise()
        if self._dropping:
            raise RuntimeError("an earlier item failed; this InOrder takes no more")
        while True:
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                self._raise()

    def _end(self) -> None:
        if self._ended:
            return
        try:
            self._queue.put(_STOP)  # (never full for long: the thread takes an item at least every work())
            self._thread.join()
        except BaseException:
            # Interrupted while waiting: nothing more is worked, and the thread ends once the queue is empty
            # (the stop marker may not have got in).
            self._dropping = self._stopping = True
            raise
        self._ended = True

    def finish(self) -> None:
        """Work everything handed over, stop the thread, and raise what any item raised."""
        self._end()
        self._raise()

    def abandon(self) -> None:
        """Stop the thread after the item it is working on; what is waiting is dropped."""
        self._dropping = True
        self._end()

    def __enter__(self) -> InOrder[T]:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abandon()
