"""A visitor's clip read ahead: once they have agreed to its use, its motion is tracked in the background
while they choose a painting, so that Animate finds it in their own cache and starts at once.

One job per visitor (a new clip stops the last one's), and at most ``slots`` at a time in the process: a
render that finds no read-ahead, or one not yet half done, tracks the clip itself, as it always could
(while it renders: waiting for the rest of a reading that has just begun would be slower). On Linux a
reading runs at a lower priority (its decoder and tracker threads too), so that it takes only what the
renders leave of the machine.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("living_portraits.app")

NICENESS = 19  # the lowest: a reading takes only what the renders leave (BENCHMARKS.md, thirteenth session)


def _lower_priority() -> None:
    """Lower the calling thread's priority: on Linux a thread's own, inherited by the threads and processes
    it starts (elsewhere ``nice`` would lower the whole app's, so nothing is done)."""
    if sys.platform.startswith("linux"):
        try:
            os.nice(NICENESS)
        except OSError:
            pass


@dataclass
class _Job:
    clip: str
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    done: float = 0.0  # the fraction of the clip read so far


class ReadAhead:
    def __init__(self, slots: int = 1):
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # visitor -> their clip's reading
        self._slots = threading.BoundedSemaphore(slots)

    def start(self, visitor: str, clip: str, work: Callable[[threading.Event, Callable[[float], None]], object]) -> bool:
        """Run ``work(stop, done)`` for the visitor's ``clip`` in a background thread: ``stop`` is set when it
        is no longer wanted, ``done(fraction)`` says how far it is. False when it is not started: the same
        clip is under way, or every slot is busy."""
        with self._lock:
            job = self._jobs.get(visitor)
            if job is not None and job.clip == clip and job.thread.is_alive():
                return False
        self.stop(visitor)  # the visitor's last clip, replaced
        if not self._slots.acquire(blocking=False):
            return False
        job = _Job(clip)

        def run():
            try:
                _lower_priority()
                work(job.stop, lambda fraction: setattr(job, "done", fraction))
                job.done = 1.0
            except Exception:  # the render tracks the clip again and says what is wrong with it
                log.debug("reading a clip ahead stopped", exc_info=True)
            finally:
                self._slots.release()

        job.thread = threading.Thread(target=run, name="clip-read-ahead", daemon=True)
        with self._lock:
            self._jobs[visitor] = job
        job.thread.start()
        return True

    def wait(self, visitor: str, clip: str, cancel: Callable[[], bool] | None = None, at_least: float = 0.5) -> bool:
        """For a render about to track ``clip``: if its reading is at least ``at_least`` done, block until it
        ends (or ``cancel()``) and return True; a reading less far on is stopped (False: track it now)."""
        with self._lock:
            job = self._jobs.get(visitor)
        if job is None or job.clip != clip:
            return False
        if job.thread.is_alive() and job.done < at_least:
            self.stop(visitor)
            return False
        while job.thread.is_alive() and not (cancel is not None and cancel()):
            job.thread.join(0.1)
        return True

    def stop(self, visitor: str, timeout: float = 10.0) -> None:
        """Stop the visitor's read-ahead and wait for it (before their folder is deleted: it writes there)."""
        with self._lock:
            job = self._jobs.pop(visitor, None)
        if job is not None:
            job.stop.set()
            job.thread.join(timeout)
