"""Child processes (optarena.envs.isolation): answers in time or killed, crashes named, and no
child outlives its owner -- a toy child, the tensor measurement worker, the CompilerGym service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from optarena.envs.isolation import Child, ChildFailed
from optarena.envs.llvm_pass_order.session import compiler_gym_home

ECHO = [sys.executable, "-c", "from optarena.envs.isolation import serve\n"
        "import os, signal, time\n"
        "def handle(request):\n"
        "    if request.get('sleep'): time.sleep(request['sleep'])\n"
        "    if request.get('die'): os.kill(os.getpid(), signal.SIGSEGV)\n"
        "    return {'echo': request, 'pid': os.getpid()}\n"
        "serve(handle, ready={'hello': 1})"]


def test_a_child_answers_and_its_errors_are_kept_apart():
    child = Child(ECHO, name="the echo child")
    try:
        reply = child.request({"x": 1}, timeout_s=30)
        assert reply["ok"] and reply["echo"] == {"x": 1} and child.ready["hello"] == 1
        assert reply["pid"] == child.pid
    finally:
        child.close()
    assert child.pid is None


def test_a_hanging_child_is_killed_and_the_next_request_starts_a_fresh_one():
    child = Child(ECHO, name="the echo child")
    try:
        first = child.request({}, timeout_s=30)["pid"]
        with pytest.raises(ChildFailed, match="no answer within 1 s") as err:
            child.request({"sleep": 60}, timeout_s=1)
        assert err.value.kind == "timeout" and not psutil.pid_exists(first)
        assert child.request({}, timeout_s=30)["pid"] != first
    finally:
        child.close()


def test_a_crashing_child_is_reported_with_its_signal():
    child = Child(ECHO, name="the echo child")
    try:
        with pytest.raises(ChildFailed, match="SIGSEGV") as err:
            child.request({"die": True}, timeout_s=30)
        assert err.value.kind == "crash"
    finally:
        child.close()


def _orphans_after_owner_is_killed(owner_code: str, timeout_s: float = 300) -> list[int]:
    """Run ``owner_code`` (which prints the pids to watch, one per line, then ``ready``) in a
    process, SIGKILL it, and return the watched pids still alive a few seconds later."""
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(owner_code)],
                             stdout=subprocess.PIPE, text=True)
    watched = []
    deadline = time.monotonic() + timeout_s
    assert owner.stdout is not None
    for line in owner.stdout:
        if line.strip() == "ready" or time.monotonic() > deadline:
            break
        watched.append(int(line))
    assert watched, "the owner reported no child"
    descendants = psutil.Process(owner.pid).children(recursive=True)
    assert {p.pid for p in descendants} >= set(watched)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    _, alive = psutil.wait_procs(descendants, timeout=20)
    return [p.pid for p in alive]


def test_a_child_dies_with_its_owner():
    assert _orphans_after_owner_is_killed(f"""
        from optarena.envs.isolation import Child
        child = Child({ECHO!r}, name="echo")
        print(child.request({{}}, timeout_s=30)["pid"], flush=True)
        print("ready", flush=True)
        import time; time.sleep(600)
    """) == []


def test_the_measurement_worker_dies_with_its_environment():
    assert _orphans_after_owner_is_killed("""
        import gymnasium as gym, optarena.envs
        env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", store=None,
                       measure={"number": 1, "repeat": 1, "min_repeat_ms": 1})
        env.reset(seed=0)
        for worker in env.unwrapped.tensor.measurers["matmul-64"].workers:
            print(worker.pid, flush=True)
        print("ready", flush=True)
        import time; time.sleep(600)
    """) == []


@pytest.mark.skipif(not (compiler_gym_home() / "venv").exists()
                    and os.environ.get("OPTARENA_REQUIRE_COMPILER_GYM") != "1",
                    reason="CompilerGym is not set up (optarena setup compiler-gym)")
def test_the_compiler_gym_service_and_its_server_die_with_their_environment():
    assert _orphans_after_owner_is_killed("""
        import gymnasium as gym, optarena.envs, psutil
        env = gym.make("optarena/LlvmPassOrder-v0", benchmark="csmith:1",
                       reward="ir_instructions", store=None)
        service = env.unwrapped.llvm.sessions[0].child.pid
        print(service, flush=True)
        for grandchild in psutil.Process(service).children(recursive=True):
            print(grandchild.pid, flush=True)
        print("ready", flush=True)
        import time; time.sleep(600)
    """) == []
