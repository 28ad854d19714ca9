from pathlib import Path

import pytest
import tvm
from tvm.target import codegen

from optarena.envs.tensor_schedule.target import (
    host_cpu_flags,
    host_mcpu,
    missing_features,
    resolve_target,
)

AVX512 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512_vnni",
          "avx512_bf16", "avx512ifma", "avx512vbmi", "avx512_vbmi2", "avx512_bitalg",
          "avx512_vpopcntdq", "avx512_fp16"}

pytestmark = pytest.mark.skipif(not host_cpu_flags(), reason="needs /proc/cpuinfo (x86 Linux)")


def _features(mcpu: str) -> set[str]:
    return set(codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": mcpu})))


def test_chosen_cpu_uses_only_reported_features():
    flags = host_cpu_flags()
    mcpu = host_mcpu(flags)
    assert missing_features(mcpu, flags) == []
    assert mcpu not in ("x86-64", "generic"), "an AVX2 host must not fall back to baseline x86-64"


def test_a_guest_without_avx512_never_gets_avx512_code():
    flags = frozenset(host_cpu_flags() - AVX512)
    mcpu = host_mcpu(flags)
    assert not any(f.startswith("avx512") for f in _features(mcpu))


def test_a_host_without_avx2_gets_no_avx2():
    flags = frozenset(f for f in host_cpu_flags() if f not in ("avx2", "fma") and f not in AVX512)
    mcpu = host_mcpu(flags)
    assert "avx2" not in _features(mcpu) and "fma" not in _features(mcpu)


def test_cpuinfo_flags_are_read(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags\t\t: fpu sse4_2 avx avx2\n")
    assert host_cpu_flags(cpuinfo) == {"fpu", "sse4_2", "avx", "avx2"}


def test_resolve_target_defaults_to_host_with_cores():
    target = resolve_target(None)
    assert str(target.attrs["mcpu"]) == host_mcpu()
    assert int(target.attrs["num-cores"]) >= 1
    assert str(resolve_target({"kind": "llvm", "mcpu": "haswell"}).attrs["mcpu"]) == "haswell"
