"""A command's per-frame arrays reuse freed memory instead of faulting every page in again each frame."""
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Five 6-MB arrays made, touched and freed, as a render's frames do (the canvas, tables, layers); the minor
# page faults per frame after the first. Transparent huge pages are turned off for the process first: where
# the kernel gives the heap huge pages, a page fault covers 2 MB and the count says nothing.
_FRAMES = """
import ctypes, resource, numpy as np
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE
def frame():
    arrays = [np.ones(6 << 20, np.uint8) for _ in range(5)]
    return sum(int(a[-1]) for a in arrays)
frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    frame()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""

# What `python -m talking_head` does before a command, then the frames.
_AFTER_THE_CLI = """
import runpy, sys
sys.argv = ["talking_head", "engines"]
try:
    runpy.run_module("talking_head", run_name="__main__")
except SystemExit:
    pass
""" + _FRAMES


def _faults_per_frame(code: str) -> float:
    env = {**os.environ, "LIVING_PORTRAITS_DEBUG": "1"}  # no stderr filter process: not what is measured
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return float(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="the setting is glibc's")
def test_a_cli_process_keeps_freed_frames_for_the_next():
    plain = _faults_per_frame(_FRAMES)
    if plain < 1000:
        pytest.skip(f"this glibc reuses freed arrays without the setting ({plain} faults a frame): nothing to see")
    assert _faults_per_frame(_AFTER_THE_CLI) < 50
