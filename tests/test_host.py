"""Facts about the machine (optarena.envs.host): waiting for other processes to be idle."""

from __future__ import annotations

import select
import subprocess
import sys

from optarena.envs.host import cpu_seconds, wait_until_idle

BUSY_THEN_IDLE = ("import sys, time\n"
                  "print('busy', flush=True)\n"
                  "end = time.perf_counter() + 0.5\n"
                  "while time.perf_counter() < end: pass\n"
                  "print('idle', flush=True)\n"
                  "time.sleep(60)\n")


def test_waiting_for_quiet_returns_only_once_a_busy_process_is_idle():
    child = subprocess.Popen([sys.executable, "-c", BUSY_THEN_IDLE], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "busy\n"
        used = cpu_seconds(child.pid)
        waited = wait_until_idle([child.pid], timeout_s=30)
        assert select.select([child.stdout], [], [], 0)[0], "returned while the child was busy"
        assert child.stdout.readline() == "idle\n"
        assert cpu_seconds(child.pid) - used > 0.2 and waited < 30
        assert wait_until_idle([child.pid], timeout_s=30) < 1  # idle now: no long wait
    finally:
        child.kill()
        child.wait()


def test_a_process_that_is_gone_counts_as_idle():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_seconds(child.pid) == 0.0
    assert wait_until_idle([child.pid]) < 1
