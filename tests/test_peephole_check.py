"""The equivalence checker catches the errors the peephole study reports, and accepts real pairs."""

import pytest

from optarena.envs.aarch64_peephole.check import EquivalenceChecker
from optarena.envs.aarch64_peephole.toolchain import Toolchain, ToolMissing

ORIGINAL = """\
ldr x1, [x0, #8]
ldr x2, [x0, #16]
add x3, x1, x2
str x3, [sp, #16]
str x1, [sp, #24]
"""
PAIRED = """\
ldp x1, x2, [x0, #8]
add x3, x1, x2
stp x3, x1, [sp, #16]
"""


@pytest.fixture(scope="module")
def checker() -> EquivalenceChecker:
    return EquivalenceChecker(states=8, seed=1)


def test_accepts_a_correct_pairing(checker):
    result = checker.check(ORIGINAL, PAIRED)
    assert result.equivalent and result.states >= 8


def test_catches_swapped_registers(checker):
    result = checker.check(ORIGINAL, PAIRED.replace("ldp x1, x2", "ldp x2, x1"))
    assert result.failure.kind == "register"


def test_catches_an_off_by_8_offset(checker):
    result = checker.check(ORIGINAL, PAIRED.replace("[x0, #8]", "[x0, #16]"))
    assert not result.equivalent and result.failure.kind in ("register", "memory")


def test_catches_a_wrong_store_pair_order(checker):
    result = checker.check(ORIGINAL, PAIRED.replace("stp x3, x1", "stp x1, x3"))
    assert result.failure.kind == "memory" and "expected" in result.failure.detail


def test_catches_a_dropped_store(checker):
    result = checker.check(ORIGINAL, PAIRED.replace("stp x3, x1, [sp, #16]", "str x3, [sp, #16]"))
    assert result.failure.kind == "memory"


def test_catches_wrong_flags(checker):
    result = checker.check("adds x0, x1, x2\n", "add x0, x1, x2\n")
    assert result.failure.kind == "flags"


def test_reports_the_assembler_message(checker):
    result = checker.check(ORIGINAL, "ldp x1, x2, [x0, #8\n")
    assert result.failure.kind == "assemble" and "line 1" in result.failure.detail


def test_rewrite_that_leaves_the_block_is_a_crash(checker):
    result = checker.check("add x0, x1, x2\n", "add x0, x1, x2\nb .+64\n")
    assert result.failure.kind == "crash"


def test_pairing_across_an_aliasing_store_is_caught(checker):
    # x4 may point at x0+16: moving the second load above the store changes what it reads
    original = "ldr x1, [x0, #8]\nstr x5, [x4]\nldr x2, [x0, #16]\n"
    illegal = "ldp x1, x2, [x0, #8]\nstr x5, [x4]\n"
    assert checker.check(original, illegal).failure.kind == "register"


def test_q_registers_are_compared(checker):
    original = "ldr q0, [x0]\nldr q1, [x0, #16]\n"
    assert checker.check(original, "ldp q0, q1, [x0]\n").equivalent
    assert checker.check(original, "ldp q1, q0, [x0]\n").failure.kind == "register"


def test_missing_tool_names_the_debian_package():
    with pytest.raises(ToolMissing, match="apt-get install"):
        Toolchain(llvm_mc="llvm-mc-does-not-exist").assemble("nop\n")


def test_alias_states_cover_every_pair_of_base_registers():
    from optarena.envs.aarch64_peephole.check import alias_constraints

    constraints = alias_constraints("ldr x1, [x0, #8]\nstr x5, [x4]\nldr x2, [x0, #16]\n")
    assert ("x0", "x4", 16) in constraints and ("x0", "x4", 8) in constraints
    assert all(r != s for r, s, _ in constraints)



def test_accepts_llvm_oracle_rewrites(checker, oracle_functions):
    assert set(oracle_functions) == {"copy", "sum4", "swap_pairs", "dot2"}
    changed = 0
    for name, (before, after) in oracle_functions.items():
        changed += before != after
        result = checker.check(before, after)
        assert result.equivalent, (name, result.failure)
    assert changed >= 3, "the oracle pairs loads and stores in most of these functions"
