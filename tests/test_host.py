"""Facts about the machine (optarena.envs.host): waiting for other processes to be idle."""

from __future__ import annotations

import select
import subprocess
import sys
import time

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
        assert wait_until_idle([child.pid], timeout_s=30)
        assert select.select([child.stdout], [], [], 0)[0], "returned while the child was busy"
        assert child.stdout.readline() == "idle\n"
        assert cpu_seconds(child.pid) - used > 0.2
        start = time.perf_counter()
        assert wait_until_idle([child.pid], timeout_s=30)
        assert time.perf_counter() - start < 1  # idle now: no long wait
    finally:
        child.kill()
        child.wait()


def test_a_process_that_is_gone_counts_as_idle():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_seconds(child.pid) == 0.0
    assert wait_until_idle([child.pid])


def test_a_process_that_stays_busy_ends_the_wait_at_its_timeout_as_not_idle():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        start = time.perf_counter()
        assert not wait_until_idle([child.pid], timeout_s=0.3)
        assert 0.3 <= time.perf_counter() - start < 2
    finally:
        child.kill()
        child.wait()
