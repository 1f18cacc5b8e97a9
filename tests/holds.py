"""Hold a child process at a chosen call until the test kills it: kill tests without races.

A kill test used to poll a child's progress and kill it "soon", with the child slowed down so the
poll would usually win; on a quiet or a loaded machine the child could finish first (or much
later). Here the child itself stops at a known point: the ``after``-th call of ``target`` has run,
the next call writes ``marker`` and blocks forever. The test waits for the marker and kills a child
that is, by construction, still running, at exactly that point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

HOLD = '''
import importlib, time
def _lf_hold(target, after, marker):
    module_name, _, attr = target.partition(":")
    owner = importlib.import_module(module_name)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    real, calls = getattr(owner, name), [0]
    def held(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            open(marker, "w").close()
            while True:
                time.sleep(3600)
        return real(*args, **kwargs)
    setattr(owner, name, held)
'''


def hold_code(target: str, after: int, marker: Path) -> str:
    """Python source to put before a ``python -c`` child's own code: ``target``
    ("module:attr.path") runs ``after`` times, then the child writes ``marker`` and waits."""
    return f"{HOLD}\n_lf_hold({target!r}, {after}, {str(marker)!r})\n"


def kill_when_held(command: list[str], marker: Path, env: dict[str, str], limit_s: float = 120.0) -> None:
    """Start ``command``; once it has written ``marker`` (it is then blocked), SIGKILL it.

    ``limit_s`` only bounds a broken child (it never reaches the hold): it decides no outcome."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + limit_s
    try:
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"the child ended before its hold: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the child never reached its hold in {limit_s:.0f} s")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
