"""``optarena compare --backend ray``: a real Ray cluster started on this machine (a head node with
2 CPUs offering the timing resource), real runs, a driver and a worker killed for real.

Skipped when Ray is not installed, unless ``OPTARENA_REQUIRE_RAY=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import psutil
import pytest
import yaml

from optarena.experiments.runs import CompareConfig
from optarena.records import RunSpec, read_records

from .conftest import private_cache

HAS_RAY = importlib.util.find_spec("ray") is not None
REQUIRE_RAY = os.environ.get("OPTARENA_REQUIRE_RAY") == "1"
pytestmark = pytest.mark.skipif(
    not HAS_RAY and not REQUIRE_RAY,
    reason="Ray is not installed (pip install -e '.[ray]'); OPTARENA_REQUIRE_RAY=1 fails instead")

BLOCK = "loads_stores/O1/dot4/0"
PEEPHOLE = {"env": "aarch64_peephole", "workloads": [BLOCK]}
TENSOR = {"env": "tensor_schedule", "workloads": ["matmul-64"],
          "kwargs": {"measure": {"number": 1, "repeat": 2, "min_repeat_ms": 1, "quiet": False}}}
RACE = {"name": "ray-race", "environments": [PEEPHOLE],
        "agents": [{"agent": "random"}, {"agent": "greedy"}], "seeds": [0, 1], "budget": 6}
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
"""Ray's settings for the clusters and drivers of these tests: token authentication with a
private token (nothing read from or written to ``~/.ray``)."""
HEADER = re.compile(r"^optarena: run (\S+) on \S+, process (\d+),", re.MULTILINE)
"""The line a run's log gets per attempt (:func:`optarena.experiments.backends.attempt`)."""


@dataclass(frozen=True)
class Cluster:
    address: str
    env: dict[str, str]
    """Environment of the nodes and of the drivers: a private optarena cache."""
    head: int
    """Process id of ``ray start --head --block``: every Ray process of the cluster is under it."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture(scope="module")
def ray_tmp() -> Iterator[Path]:
    """Ray's temporary directory for these tests (short: Ray's socket paths must fit)."""
    if not HAS_RAY:
        pytest.fail("OPTARENA_REQUIRE_RAY=1 but Ray is not installed (pip install -e '.[ray]')")
    path = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, ray_tmp: Path) -> Iterator[Cluster]:
    """A one-node Ray cluster on 127.0.0.1 (2 CPUs, ``optarena_timing: 1``), stopped with
    everything it started."""
    env = {**private_cache(tmp_path_factory.mktemp("ray-cache")), **RAY_ENV}
    port = _free_port()
    output = tmp_path_factory.mktemp("ray-head") / "ray-start.txt"
    with output.open("w") as sink:
        head = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
             "--node-ip-address=127.0.0.1", f"--port={port}",
             '--resources={"optarena_timing": 1}', "--num-cpus=2", "--include-dashboard=false",
             f"--dashboard-agent-listen-port={_free_port()}", "--object-store-memory=200000000",
             f"--temp-dir={ray_tmp}", "--disable-usage-stats"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in output.read_text():
            assert head.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        yield Cluster(f"127.0.0.1:{port}", env, head.pid)
    finally:
        processes = _descendants(head.pid)
        head.terminate()  # ray start --block stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        _, alive = psutil.wait_procs(processes, timeout=30)
        for process in alive:
            process.kill()


def _config(config: dict, tmp_path: Path) -> list[RunSpec]:
    """Write ``config`` to ``tmp_path/config.yaml``; its runs as the driver will read them."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return CompareConfig.load(path).runs()


def _compare_command(tmp_path: Path, cluster: Cluster | None) -> list[str]:
    """``optarena compare`` of ``tmp_path/config.yaml`` into ``tmp_path/out`` on Ray (the
    cluster's, or a local instance)."""
    command = [sys.executable, "-m", "optarena.experiments.cli", "compare", "--config",
               str(tmp_path / "config.yaml"), "--out", str(tmp_path / "out"), "--backend", "ray"]
    return command + (["--address", cluster.address] if cluster else [])


def _race(tmp_path: Path, cluster: Cluster | None, env: dict[str, str]
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_compare_command(tmp_path, cluster), capture_output=True, text=True,
                          env=env, timeout=600, check=False)


def _busy_workers(cluster: Cluster) -> list[psutil.Process]:
    """The cluster's worker processes executing a run (Ray titles them ``ray::optarena RUN_ID``)."""
    busy = []
    for process in _descendants(cluster.head):
        try:
            if process.cmdline()[:1] and process.cmdline()[0].startswith("ray::optarena"):
                busy.append(process)
        except psutil.NoSuchProcess:
            continue
    return busy


def test_a_killed_driver_resumes_to_the_same_runs_exactly_once(cluster, tmp_path):
    expected = {r.run_id for r in _config(RACE, tmp_path)}
    results = tmp_path / "out" / "results.jsonl"
    driver = subprocess.Popen(_compare_command(tmp_path, cluster), env=cluster.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not read_records(results):
        assert driver.poll() is None and time.monotonic() < deadline, "no run finished"
        time.sleep(0.05)
    workers = _busy_workers(cluster)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = results.read_text()
    finished_before = {r["run_id"] for r in read_records(results)}
    assert 1 <= len(finished_before) < len(expected), "kill the driver halfway"
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, "a run of the killed driver went on"

    resumed = _race(tmp_path, cluster, cluster.env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(finished_before)} already" in resumed.stdout
    ids = [r["run_id"] for r in read_records(results)]
    assert set(ids) == expected and len(ids) == len(expected)  # none lost, none recorded twice
    assert results.read_text().startswith(before)
    assert not (tmp_path / "out" / "failures.jsonl").exists()
    again = _race(tmp_path, cluster, cluster.env)
    assert again.returncode == 0 and "0 to go" in again.stdout
    assert len(read_records(results)) == len(expected)


@pytest.mark.slow  # 30 s each; the killed driver's test covers the cluster in the default run
def test_a_run_whose_worker_is_killed_runs_again(cluster, tmp_path):
    config = {**RACE, "environments": [TENSOR], "agents": [{"agent": "random"}], "seeds": [0],
              "budget": 3}
    (spec,) = _config(config, tmp_path)
    log = tmp_path / "out" / "logs" / f"{spec.run_id}.log"
    driver = subprocess.Popen(_compare_command(tmp_path, cluster), env=cluster.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not (log.exists() and HEADER.search(log.read_text())):
        assert driver.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    worker = psutil.Process(int(HEADER.search(log.read_text()).group(2)))
    assert worker.cmdline()[0] == f"ray::optarena {spec.run_id}", worker.cmdline()
    helpers = worker.children(recursive=True)  # the measurement worker, dying with its parent
    worker.send_signal(signal.SIGKILL)
    output, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, output
    attempts = HEADER.findall(log.read_text())
    assert len(attempts) == 2 and attempts[0][1] == str(worker.pid) != attempts[1][1]
    assert "lost its worker" in output
    assert [r["run_id"] for r in read_records(tmp_path / "out" / "results.jsonl")] == [spec.run_id]
    assert not (tmp_path / "out" / "failures.jsonl").exists()
    _, alive = psutil.wait_procs(helpers, timeout=30)
    assert not alive, "a process of the killed run outlived it"


def test_a_run_past_its_timeout_is_cancelled_and_recorded(cluster, tmp_path):
    (spec,) = _config({**RACE, "agents": [{"agent": "ppo"}], "seeds": [0], "run_timeout_s": 1.0},
                      tmp_path)
    raced = _race(tmp_path, cluster, cluster.env)
    assert raced.returncode == 1, raced.stdout + raced.stderr
    (failure,) = read_records(tmp_path / "out" / "failures.jsonl")
    assert failure["run_id"] == spec.run_id
    assert failure["error"].startswith("killed after run_timeout_s=1 s")
    assert failure["log"].endswith(f"/out/logs/{spec.run_id}.log")
    assert not (tmp_path / "out" / "results.jsonl").exists()
    (attempt,) = HEADER.findall((tmp_path / "out" / "logs" / f"{spec.run_id}.log").read_text())
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(int(attempt[1])).wait(timeout=30)  # TimeoutExpired: the worker lives on


@pytest.mark.slow
def test_timing_runs_never_share_a_node(cluster, tmp_path):
    """Two CPUs: the cycle-scored runs may go two at a time, a run that times programs has the
    node to itself (no other timing run, nor any other run)."""
    config = {**RACE, "environments": [TENSOR, PEEPHOLE], "agents": [{"agent": "random"}],
              "budget": 3}
    expected = {r.run_id for r in _config(config, tmp_path)}
    raced = _race(tmp_path, cluster, cluster.env)
    assert raced.returncode == 0, raced.stdout + raced.stderr
    records = read_records(tmp_path / "out" / "results.jsonl")
    assert {r["run_id"] for r in records} == expected and len(records) == 4
    timing = [r for r in records if r["spec"]["env"] == "tensor_schedule"]
    assert len(timing) == 2
    assert {r["machine"]["hostname"] for r in records} == {records[0]["machine"]["hostname"]}
    for first, second in combinations(records, 2):
        if first in timing or second in timing:
            assert (first["finished"] <= second["started"]
                    or second["finished"] <= first["started"]), (first["run_id"], second["run_id"])


def test_without_an_address_a_local_ray_instance_runs_the_race(tmp_path, ray_tmp):
    (spec,) = _config({**RACE, "agents": [{"agent": "greedy"}], "seeds": [0]}, tmp_path)
    raced = _race(tmp_path, None, {**os.environ, **RAY_ENV, "RAY_TMPDIR": str(ray_tmp)})
    assert raced.returncode == 0, raced.stdout + raced.stderr
    assert "a local Ray instance" in raced.stdout
    (record,) = read_records(tmp_path / "out" / "results.jsonl")
    assert record["run_id"] == spec.run_id and record["result"]["usage"]["measurements"] <= 6
    log = tmp_path / "out" / "logs" / f"{spec.run_id}.log"
    assert HEADER.search(log.read_text()).group(1) == spec.run_id
