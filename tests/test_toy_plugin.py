"""A fourth environment costs its own file and one registry line: the toy environment
(tests/toy_env.py), registered by an entry point of group ``optarena.envs`` in a distribution on
the path, races through ``optarena compare``, is submitted and verified, with nothing of optarena
changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from optarena.records import read_records

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables under which the toy environment is an installed plugin."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "optarena_toy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: optarena-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[optarena.envs]\ntoy = toy_env:KIND\n")  # the line
    path = os.pathsep.join([str(site), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path,
            "OPTARENA_STORE": str(tmp_path_factory.mktemp("store") / "store.sqlite")}


def _optarena(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "optarena.experiments.cli", *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


def test_the_toy_environment_races_and_is_submitted_and_verified(tmp_path, plugin_env):
    config = {"name": "toy", "environments": [{"env": "toy_permutation", "workloads": ["jobs-6"]}],
              "agents": [{"agent": "random"}, {"agent": "greedy"}, {"agent": "mcts-measured"}],
              "seeds": [0, 1], "budget": 10}
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    done = _optarena("compare", "--config", str(tmp_path / "toy.yaml"), "--out", str(out),
                     env=plugin_env)
    assert done.returncode == 0, done.stdout + done.stderr
    records = read_records(out / "results.jsonl")
    assert len(records) == 6
    assert {r["env_id"] for r in records} == {"optarena-test/ToyPermutation-v0"}
    assert all(1 <= r["result"]["usage"]["measurements"] <= 10 for r in records)
    best = max(records, key=lambda r: r["result"]["best_improvement"])
    assert best["result"]["best_improvement"] > 1.0
    assert best["problem"]["anchors"] == {"smith": pytest.approx(98.0)}
    assert "toy_permutation" in (out / "report.md").read_text() or \
        "jobs-6" in (out / "report.md").read_text()

    submission = tmp_path / "best.json"
    made = _optarena("submit", str(out), "--run", best["run_id"], "-o", str(submission),
                     env=plugin_env)
    assert made.returncode == 0, made.stdout + made.stderr
    verified = _optarena("verify", str(submission), env=plugin_env)
    assert verified.returncode == 0 and "ACCEPT" in verified.stdout, verified.stdout

    claim = json.loads(submission.read_text())
    claim["claimed"]["score"] *= 0.99  # 1% better than it is: deterministic scores are exact
    claim["claimed"]["improvement"] = claim["claimed"]["reference_score"] / claim["claimed"]["score"]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(claim))
    rejected = _optarena("verify", str(tampered), env=plugin_env)
    assert rejected.returncode == 1 and "REJECT" in rejected.stdout, rejected.stdout


def test_an_unknown_kind_names_the_known_ones(tmp_path, plugin_env):
    config = {"environments": [{"env": "toy_permutatio", "workloads": ["jobs-6"]}],
              "agents": [{"agent": "random"}], "budget": 2}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    done = _optarena("compare", "--config", str(tmp_path / "bad.yaml"), "--out",
                     str(tmp_path / "o"), env=plugin_env)
    assert done.returncode != 0
    assert "toy_permutation" in done.stdout + done.stderr
