from pathlib import Path

import numpy as np
import pytest
import tvm

from optarena.envs.tensor_schedule.names import available
from optarena.envs.tensor_schedule.target import host_target
from optarena.envs.tensor_schedule.worker import make_inputs
from optarena.envs.tensor_schedule.workload import RC_WORKLOADS, get_workload

USER_KERNEL = '''
from tvm.script import tirx as T

@T.prim_func(s_tir=True)
def scaled_add(A: T.Buffer((64, 64), "float32"), B: T.Buffer((64, 64), "float32"),
               C: T.Buffer((64, 64), "float32")):
    for i, j in T.grid(64, 64):
        with T.sblock("C"):
            vi, vj = T.axis.remap("SS", [i, j])
            C[vi, vj] = A[vi, vj] * T.float32(2.0) + B[vi, vj]
'''


def test_unknown_workload_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown workload 'matmool-64'") as err:
        get_workload("matmool-64")
    for name in available():
        assert name in str(err.value)


def test_unknown_knob_is_an_error():
    with pytest.raises(ValueError, match="unknown knob"):
        get_workload("flux-conv:channels=3")


def test_knobs_and_families_parse():
    assert get_workload("matmul-32x16x8").params == [
        ("A", (32, 8), "float32"), ("B", (8, 16), "float32"), ("C", (32, 16), "float32")]
    assert get_workload("llama3-8b-attention:seq_len=16").params[0][1] == (32, 16, 128)
    assert get_workload("flux-conv:size=4").name == "flux-conv:size=4"


def test_rc_layers_use_the_published_dimensions():
    shapes = {name: {p: s for p, s, _ in get_workload(name).params} for name in RC_WORKLOADS}
    llama = shapes["llama3-8b-attention"]
    assert llama["Q"][0] == 32 and llama["K"][0] == 8 and llama["Q"][2] == 128
    moe = shapes["deepseek-r1-moe"]
    assert moe["X"] == (16, 7168) and moe["W_gate"] == (2048, 7168) and moe["W_down"] == (7168, 2048)
    flux = shapes["flux-attention"]
    assert flux["Q"][0] == flux["K"][0] == 24 and flux["Q"][2] == 128
    assert shapes["flux-conv"]["W"] == (3, 3, 512, 512)
    scout = shapes["llama4-scout-mlp"]
    assert scout["W_up"] == (8192, 5120) and scout["W_down"] == (5120, 8192)
    assert all(get_workload(n).source.count("config.json") >= 1 for n in RC_WORKLOADS)


@pytest.mark.parametrize("name", [
    "matmul-32x16x8",
    "conv2d-6-8",
    "llama3-8b-attention:seq_len=8",
    "flux-attention:seq_len=8",
    "deepseek-r1-moe:tokens=1",
    "flux-conv:size=2",
])
def test_numpy_reference_matches_the_tvm_definition(name):
    """The reference every measurement is checked against computes what the TensorIR computes."""
    workload = get_workload(name)
    inputs = make_inputs(workload, seed=3)
    written = workload.written
    expected = workload.reference([a for i, a in enumerate(inputs) if i not in written])
    runtime = tvm.compile(workload.mod, target=tvm.target.Target(host_target())).jit()
    args = [tvm.runtime.tensor(a, tvm.cpu()) for a in inputs]
    runtime["main"](*args)
    for index, ref in zip(written, expected, strict=True):
        np.testing.assert_allclose(args[index].numpy(), ref, rtol=2e-4, atol=2e-4 * np.abs(ref).max())


def test_written_parameters_are_the_outputs():
    assert get_workload("matmul-16").written == [2]
    assert get_workload("llama3-8b-attention:seq_len=8").written == [3]


def test_user_tvmscript_file(tmp_path: Path):
    path = tmp_path / "scaled_add.py"
    path.write_text(USER_KERNEL)
    workload = get_workload(str(path))
    assert workload.reference is None
    assert [p for p, _, _ in workload.params] == ["A", "B", "C"]
    assert workload.written == [2]
    assert workload.flops == 2 * 64 * 64


def test_missing_user_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_workload(str(tmp_path / "nope.py"))
