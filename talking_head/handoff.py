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
    of the two must end every use (``with`` ends it with :meth:`abandon` on an exception).
    """

    def __init__(self, work: Callable[[T], None], depth: int = 2, name: str = "in-order"):
        if depth < 1:
            raise ValueError("depth must be 1 or more")
        self._work = work
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._dropping = False
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is None and not self._dropping:
                try:
                    self._work(item)
                except BaseException as e:  # noqa: BLE001  (handed to the caller's thread)
                    self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._dropping = True  # (what is still queued after a failure is not worked)
            raise error

    def put(self, item: T) -> None:
        """Hand ``item`` over; waits while ``depth`` items are waiting. Raises what an earlier item raised."""
        if self._ended:
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
        if not self._ended:
            self._ended = True
            self._queue.put(_STOP)  # (never full for long: the thread takes an item at least every work())
            self._thread.join()

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
