"""Anchors of the tensor workloads: PyTorch eager and OpenBLAS, checked against the reference and
timed in the measurement worker, kept in the store, recorded with the problem and reported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from optarena.envs.tensor_schedule.anchors import MATMUL, Anchor
from optarena.envs.tensor_schedule.measure import Measurer
from optarena.envs.tensor_schedule.roofline import ROOFLINE, workload_bytes
from optarena.envs.tensor_schedule.worker import make_inputs, measure_anchor
from optarena.envs.tensor_schedule.workload import (
    RC_WORKLOADS,
    attention,
    conv2d_nhwc,
    get_workload,
    matmul,
    swiglu_mlp,
)
from optarena.experiments.report import write_report
from optarena.records import append_record
from tests.conftest import FAST_MEASURE
from tests.test_report_html import _record, _rows, _section
from tests.test_workload import USER_KERNEL

ATTENTION = "llama3-8b-attention:seq_len=8"
PROTOCOL = {key: FAST_MEASURE[key] for key in ("number", "repeat", "min_repeat_ms")}


@pytest.fixture(scope="module")
def anchor_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("anchors") / "store.sqlite"


def _problem(workload: str, store: Path) -> dict:
    """The problem record (as results.jsonl keeps it) of a fresh environment."""
    env = gym.make("optarena/TensorSchedule-v0", workload=workload, measure=FAST_MEASURE,
                   store=store)
    try:
        return json.loads(json.dumps(env.unwrapped.problem()))
    finally:
        env.close()


@pytest.mark.parametrize(("workload", "names"), [("matmul-64", ["pytorch", "openblas"]),
                                                 (ATTENTION, ["pytorch"])])
def test_anchors_are_checked_timed_recorded_and_stored(workload, names, anchor_store,
                                                       monkeypatch):
    problem = _problem(workload, anchor_store)
    assert list(problem["anchors"]) == [*names, ROOFLINE]  # and the machine's roofline
    assert all(latency > 0 for latency in problem["anchors"].values())
    bound = problem["anchor_notes"][ROOFLINE]
    assert bound["bytes"] == workload_bytes(get_workload(workload)) > 0
    assert bound["flops"] == get_workload(workload).flops
    # measured rates (no floor: the test suite runs tests side by side, which slows them)
    assert bound["stream_bytes_per_s"] > 0 and bound["peak_flops_per_s"] > 0
    assert problem["anchors"][ROOFLINE] == pytest.approx(max(
        bound["bytes"] / bound["stream_bytes_per_s"], bound["flops"] / bound["peak_flops_per_s"]))
    assert bound["bound"] == ("memory" if bound["memory_s"] >= bound["compute_s"] else "compute")
    for name in names:
        note = problem["anchor_notes"][name]
        assert 0 <= note["max_error"] <= 1e-3  # checked against the reference first
        assert note["threads"] == problem["target"]["num-cores"]
        blas = [lib for lib in note["libraries"] if lib["user_api"] == "blas"]
        assert blas and all(lib["internal_api"] and lib["num_threads"] for lib in blas)
    pytorch = problem["anchor_notes"]["pytorch"]
    assert pytorch["torch"].startswith("2.13.0") and pytorch["torch_threads"] == \
        problem["target"]["num-cores"]
    assert "torch" not in problem["anchor_notes"].get("openblas", {})
    # a second environment on the same store does not time them again
    monkeypatch.setattr(Measurer, "measure_anchors",
                        lambda self, names: pytest.fail(f"{names} timed again"))
    assert _problem(workload, anchor_store)["anchors"] == problem["anchors"]


@pytest.mark.parametrize("workload", [
    matmul(12, 20, 28), conv2d_nhwc(6, 8, out_channels=12, kernel=3),
    attention(8, 2, 16, 10, causal=True, name="gqa", source="test"),
    attention(4, 4, 16, 10, causal=False, name="mha", source="test"),
    swiglu_mlp(3, 32, 48, name="mlp", source="test")], ids=lambda w: w.name)
def test_every_kind_of_anchor_computes_its_workloads_output(workload):
    written = workload.written
    inputs = [a for i, a in enumerate(make_inputs(workload, 5)) if i not in written]
    (reference,) = workload.reference(inputs)
    quick = {"number": 1, "repeat": 1, "min_repeat_ms": 0}
    for name, anchor in workload.anchors.items():
        result = measure_anchor(anchor, inputs, reference, 1, 1e-5, quick)
        assert result["max_error"] <= 1e-5 and result["latency_s"] > 0, name


def test_an_anchor_whose_output_is_wrong_is_refused_before_timing():
    workload = get_workload("matmul-64")
    inputs = make_inputs(workload, 0)[:2]
    (reference,) = workload.reference(inputs)
    calls = []

    def transposed(arrays, threads):  # B @ A instead of A @ B
        import torch

        a, b = (torch.from_numpy(x) for x in arrays)
        return lambda: calls.append(1) or torch.matmul(b, a)

    refused = measure_anchor(Anchor("torch", transposed), inputs, reference, 2, 1e-3, PROTOCOL)
    assert refused["error_kind"] == "wrong_output" and refused["max_error"] > 1e-3
    assert "latency_s" not in refused and len(calls) == 1  # checked once, never timed
    right = measure_anchor(MATMUL["pytorch"], inputs, reference, 2, 1e-3, PROTOCOL)
    assert right["latency_s"] > 0 and right["max_error"] <= 1e-3
    assert len(right["runs_s"]) == PROTOCOL["repeat"]


def test_without_torch_there_is_no_pytorch_anchor_and_the_problem_says_why(
        monkeypatch, tmp_path):
    workload = get_workload("matmul-64")
    inputs = make_inputs(workload, 0)[:2]
    (reference,) = workload.reference(inputs)
    with monkeypatch.context() as hidden:
        hidden.setitem(sys.modules, "torch", None)  # `import torch` fails, as when not installed
        missing = measure_anchor(MATMUL["pytorch"], inputs, reference, 2, 1e-3, PROTOCOL)
    assert missing["error_kind"] == "missing" and "optarena[anchors]" in missing["error"]
    from optarena.envs.tensor_schedule import scorer

    real_version = scorer.library_version
    monkeypatch.setattr(scorer, "library_version",
                        lambda library: None if library == "torch" else real_version(library))
    problem = _problem("matmul-64", tmp_path / "store.sqlite")
    assert set(problem["anchors"]) == {"openblas"} and problem["anchors"]["openblas"] > 0
    for name in ("pytorch", ROOFLINE):  # the roofline's rates are measured with torch
        assert problem["anchor_notes"][name] == \
            {"absent": "missing: torch is not installed (pip install 'optarena[anchors]')"}


def test_every_built_in_workload_has_a_pytorch_anchor_and_a_user_workload_none(tmp_path):
    for name in (*RC_WORKLOADS, "conv2d-8-16", "matmul-32x16x8"):
        anchors = get_workload(name).anchors
        assert "pytorch" in anchors and ("openblas" in anchors) == name.startswith("matmul")
    path = tmp_path / "kernel.py"
    path.write_text(USER_KERNEL)
    assert get_workload(str(path)).anchors == {}


def test_the_report_sets_each_agents_best_against_pytorch_eager(tmp_path):
    reference_s = 1e-3  # _record's reference score
    notes = {"pytorch": {"threads": 2, "torch": "2.13.0+cpu", "torch_blas": "mkl"},
             "openblas": {"threads": 2, "libraries": [
                 {"user_api": "blas", "internal_api": "openblas", "version": "0.3.31",
                  "architecture": "Haswell", "num_threads": 2}]}}
    notes[ROOFLINE] = {"bytes": 4e6, "flops": 2e9, "stream_bytes_per_s": 40e9,
                       "peak_flops_per_s": 200e9, "bound": "compute"}
    for seed in (0, 1, 2):
        # PyTorch eager: 0.1 ms (10x over the reference), OpenBLAS 0.05 ms (20x); the
        # roofline 10 µs (100x)
        problem = {"anchors": {"pytorch": reference_s / 10, "openblas": reference_s / 20,
                               ROOFLINE: reference_s / 100}, "anchor_notes": notes}
        for label, best in (("metaschedule", 8.0), ("mcts", 12.0 * (1 + 0.1 * seed))):
            append_record(tmp_path / "results.jsonl",
                          _record("matmul-64", label, seed, [(1, 1.0), (6, best)],
                                  problem=problem))
        for label in ("metaschedule", "mcts"):  # no anchors recorded: no column
            append_record(tmp_path / "results.jsonl",
                          _record("conv-8", label, seed, [(1, 1.0), (6, 3.0 + seed)]))
    markdown = write_report(tmp_path).read_text()
    section = _section(markdown, "matmul-64")
    table = _rows(section, "| rank |")
    header = next(line for line in section.splitlines() if line.startswith("| rank |"))
    assert "| vs PyTorch eager | vs OpenBLAS |" in header
    assert table["metaschedule"][4] == "0.80x [0.80, 0.80]"  # 8x against PyTorch's 10x
    mcts = np.exp(np.mean(np.log([12.0 * (1 + 0.1 * s) / 10 for s in (0, 1, 2)])))
    assert table["mcts"][4].startswith(f"{mcts:.2f}x [") and table["mcts"][5].startswith(
        f"{mcts / 2:.2f}x [")
    best_s = reference_s / (12.0 * 1.2)
    assert (f"PyTorch eager 100 µs (torch 2.13.0+cpu, mkl, 2 threads); OpenBLAS 50 µs "
            f"(openblas 0.3.31 Haswell, 2 threads). The best schedule found, "
            f"{best_s * 1e6:.3g} µs (`mcts`, run `mcts-s2-matmul-64`), is 1.44x faster than "
            "PyTorch eager and 1.39x slower than OpenBLAS.") in section
    # the roofline is a bound, not a column: the best reaches 14.4x / 100x of it
    assert "| vs roofline" not in header
    assert ("The roofline on the machine of the best run, measured in the same run: 10 µs (4 MB "
            "moved at 40 GB/s, a reduction over as many bytes; 2 GFLOP at 200 GFLOP/s, a float32 "
            "GEMM; compute-bound). The best schedule found reaches 14% of it; PyTorch eager 10%, "
            "OpenBLAS 20%.") in section
    assert "vs PyTorch eager" not in _section(markdown, "conv-8")
    assert "roofline" not in _section(markdown, "conv-8")
    pooled = _section(markdown, "All 2 workloads")  # one workload lacks the anchor: no column
    assert "vs PyTorch eager" not in pooled
    page = (tmp_path / "report.html").read_text()
    assert "<th>vs PyTorch eager</th>" in page and "1.44x faster than PyTorch eager" in page
