"""The prover: its instruction semantics against unicorn (every instruction form of the shipped
corpora), rewrites wrong only for values random states miss, LLVM's own rewrites proved, and the
verdicts in the environment's ``info``."""

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import gymnasium as gym
import pytest
import z3

from optarena.envs.aarch64_peephole.block import Instruction, canonical, parse_block
from optarena.envs.aarch64_peephole.check import PAGE, EquivalenceChecker
from optarena.envs.aarch64_peephole.corpus import CSMITH_CORPUS, SHIPPED_CORPUS, load_corpus
from optarena.envs.aarch64_peephole.prove import COMPARED, Counterexample, NotCovered, Prover
from optarena.envs.aarch64_peephole.splits import CSMITH_OPT_CORPUS
from optarena.envs.aarch64_peephole.terms import Leaves, evaluate, read, stored
from optarena.envs.aarch64_peephole.toolchain import AssembleError, Toolchain

CORPORA = (SHIPPED_CORPUS, CSMITH_CORPUS, CSMITH_OPT_CORPUS)
STATES = 4
"""Random states each instruction form runs from (each with its own registers and memory)."""
EXTRA_FORMS = [
    # flag arithmetic and conditional forms the corpora do not hold
    "adc x0, x1, x2", "adcs w0, w1, w2", "sbc x0, x1, x2", "sbcs w0, w1, w2", "ngcs x3, x4",
    "adds x0, x1, x2", "cmn w1, #7", "ccmn x1, x2, #3, hi", "ccmp w1, #5, #8, lt",
    "csinv x0, x1, x2, vs", "csneg w0, w1, w2, pl", "cinc x3, x4, ls", "cset w0, ge",
    # the fused multiply-adds the corpora lack
    "fmsub d0, d1, d2, d3", "fnmadd d0, d1, d2, d3", "fnmsub s0, s1, s2, s3",
    "fmls v0.2d, v1.2d, v2.2d",
    # pre-/post-index pairs, narrow stores, extended register offsets
    "ldp x1, x2, [x0, #16]!", "ldp w1, w2, [x0], #-8", "stp q1, q2, [x0, #-32]!",
    "ldpsw x1, x2, [x0], #8", "str h1, [x0, #6]", "ldr b2, [x0, x1]", "ldrsh x1, [x0, w2, sxtw #1]",
]
DIVISIONS = ["udiv x0, x1, x2", "sdiv w0, w1, w2"]
"""Instructions also run with a zero divisor (AArch64's quotient is 0; VEX adds a trap)."""
_CONDITIONS = {"eq", "ne", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt",
               "le", "al", "cs", "cc"}
_SHIFTS = re.compile(r"^(lsl|lsr|asr|ror|uxt[bhwx]|sxt[bhwx]|msl)\b")


def operand_kind(operand: str) -> str:
    """What kind of operand it is: ``x``, ``w``, ``imm``, ``mem+imm!``, ``v.4s``, ``cond`` ..."""
    o = operand.lower()
    memory = re.fullmatch(r"\[\s*(x\d+|sp)\s*(?:,\s*(.*?))?\](!?)", o)
    if memory:
        inner = memory.group(2) or ""
        index = "" if not inner else "+imm" if inner.startswith("#") else (
            "+reg+ext" if "," in inner else "+reg")
        return f"mem{index}{memory.group(3)}"
    for pattern, kind in ((r"#.*", "imm"), (r"(x\d+|xzr)", "x"), (r"(w\d+|wzr)", "w"),
                          (r"w?sp", o), (r"[bhsdq]\d+", o[:1]), (r"v\d+\.\d*([bhsdq])", None),
                          (r"v\d+\.[bhsd]\[\d+\]", "v.lane"), (r"\{.*\}", "list")):
        if re.fullmatch(pattern, o):
            return kind or "v." + o.split(".")[1]
    if o in _CONDITIONS:
        return "cond"
    shift = _SHIFTS.match(o)
    if shift:
        return shift.group(1)
    raise AssertionError(f"unknown operand {operand!r}")


def instruction_form(inst: Instruction) -> tuple[str, tuple[str, ...]]:
    """The mnemonic and the operands' kinds (a register list ``{ v0.4s, v1.4s }`` is one)."""
    operands = re.findall(r"\{[^}]*\}|\[[^\]]*\]!?|[^,\s][^,]*", ", ".join(inst.operands))
    return inst.mnemonic, tuple(operand_kind(o.strip()) for o in operands)


@pytest.fixture(scope="module")
def forms() -> dict[tuple[str, tuple[str, ...]], str]:
    """Each instruction form of the shipped corpora (inputs and LLVM's results): one instance."""
    lines = dict.fromkeys(line for corpus in CORPORA for block in load_corpus(corpus)
                          for text in (block.input, block.oracle or "") for line in text.splitlines())
    out: dict[tuple[str, tuple[str, ...]], str] = {}
    for inst in parse_block("\n".join(lines)):
        out.setdefault(instruction_form(inst), str(inst).strip())
    return out


@pytest.fixture(scope="module")
def checker() -> EquivalenceChecker:
    return EquivalenceChecker(states=8, seed=1, proof_time_limit=5.0)


class _NaN(Exception):
    """A floating-point operand is a NaN: the reference below does not model their payloads."""


def _float(bits: int, width: int) -> z3.FPRef:
    sort = z3.Float32() if width == 32 else z3.Float64()
    exponent = (bits >> (23 if width == 32 else 52)) & (0xFF if width == 32 else 0x7FF)
    if exponent == (0xFF if width == 32 else 0x7FF) and bits & ((1 << (23 if width == 32 else 52)) - 1):
        raise _NaN
    return z3.fpBVToFP(z3.BitVecVal(bits, width), sort)


def arm_fp(name: str, values: Sequence[int], widths: Sequence[int], width: int) -> int:
    """AArch64's value of the prover's floating-point functions on non-NaN operands (IEEE, round
    to nearest: FPCR is 0 in these states), computed by z3's floating-point theory."""
    match = re.fullmatch(r"(Add|Sub|Mul|Div|Fma|Fms|Fnma|Fnms)F(32|64)", name)
    assert match and values[0] == 0, (name, values)
    x = [_float(v, width) for v in values[1:]]
    rne = z3.RNE()
    op = match.group(1)
    if op in ("Add", "Sub", "Mul", "Div"):
        result = {"Add": z3.fpAdd, "Sub": z3.fpSub, "Mul": z3.fpMul, "Div": z3.fpDiv}[op](rne, *x)
    else:
        a, b, c = x
        negate_product, negate_addend = {"Fma": (False, False), "Fms": (True, False),
                                         "Fnma": (True, True), "Fnms": (False, True)}[op]
        result = z3.fpFMA(rne, z3.fpNeg(a) if negate_product else a, b,
                          z3.fpNeg(c) if negate_addend else c)
    if z3.is_true(z3.simplify(z3.fpIsNaN(result))):  # AArch64's default NaN
        return 0x7FC0_0000 if width == 32 else 0x7FF8_0000_0000_0000
    return z3.simplify(z3.fpToIEEEBV(result)).as_long()


def _leaves(registers: Mapping[str, int], byte) -> Leaves:
    names = {"xsp": "sp"}
    return Leaves(lambda name: registers.get(names.get(name, name), 0), byte, arm_fp)


def _random_state(checker: EquivalenceChecker, index: int) -> dict[str, int]:
    initial = checker.initial_state(index)
    return {**{f"x{i}": v for i, v in enumerate(initial.x)}, "sp": initial.sp,
            **{f"q{i}": v for i, v in enumerate(initial.q)}, "nzcv": initial.nzcv, "fpcr": 0}


def differences(checker: EquivalenceChecker, prover: Prover, text: str, code: bytes,
                state: int | Counterexample) -> list[str]:
    """Where unicorn and the prover's semantics disagree on ``text`` from a state: a random
    state's index (random registers and memory) or given registers (memory zero)."""
    machine = checker._machine
    if isinstance(state, Counterexample):
        final = machine.replay(code, state, 100)
        registers = state.registers
        leaves = _leaves(registers, lambda address: state.memory.get(address, 0))
    else:
        final = machine.run(code, state, None, 100)
        registers = _random_state(checker, state)
        leaves = _leaves(registers, lambda address: machine.page_contents(
            state, address & ~(PAGE - 1))[address & (PAGE - 1)])
    assert not isinstance(final, str), final
    effect = prover.effect(text, code)
    memo: dict[int, int] = {}
    try:
        ours = [evaluate(effect.registers[name], leaves, memo) for name in COMPARED[:64]]
        ours.append(evaluate(effect.nzcv, leaves, memo) << 28)
        stores = {evaluate(address, leaves, memo) for address, _ in stored(effect.memory)}
        written = {a: read(effect.memory, a, leaves, memo) for a in stores | final.written.keys()}
    except _NaN:
        return []
    emulated = machine.registers.values(final.registers)
    names = [*COMPARED[:31], "sp", *COMPARED[32:64], "nzcv"]
    found = [f"{n} = {ours[i]:#x}, unicorn {emulated[i]:#x}" for i, n in enumerate(names)
             if ours[i] != emulated[i]]
    found += [f"[{a:#x}] = {b:#04x}, unicorn {machine.byte(final, a):#04x}"
              for a, b in sorted(written.items()) if b != machine.byte(final, a)]
    return found


def test_every_corpus_form_is_covered_and_agrees_with_unicorn(forms, checker):
    """Every instruction form of the corpora (and a few more), from random registers and
    memory: the prover's final registers, flags and memory are unicorn's."""
    assert len(forms) >= 200, len(forms)
    texts = [*forms.values(), *EXTRA_FORMS]
    codes = Toolchain().assemble_many([f"{text}\n" for text in texts])
    prover = checker.prover
    mismatches, uncovered = {}, {}
    for text, code in zip(texts, codes, strict=True):
        assert not isinstance(code, AssembleError), (text, code.message)
        try:
            found = [d for state in range(STATES) for d in differences(checker, prover, text, code,
                                                                        state)]
        except NotCovered as err:
            uncovered[text] = str(err)
            continue
        if found:
            mismatches[text] = found[:3]
    assert not uncovered, uncovered
    assert not mismatches, mismatches


@pytest.mark.parametrize("text", DIVISIONS)
def test_division_by_zero_gives_zero(checker, text):
    code = Toolchain().assemble(f"{text}\n")
    registers = {**_random_state(checker, 0), "x2": 0}
    example = Counterexample(registers, {})
    assert checker._machine.replay(code, example, 10).registers  # unicorn runs it to the end
    assert differences(checker, checker.prover, text, code, example) == []
    effect = checker.prover.effect(text, code)
    value = evaluate(effect.registers["x0"], _leaves(registers, lambda a: 0))
    assert value == 0


def test_instructions_outside_the_model_are_named(checker):
    code = Toolchain().assemble("clz x0, x1\n")
    with pytest.raises(NotCovered, match="Clz64"):
        checker.prover.effect("clz x0, x1\n", code)


# ------------------------------------------------------------------ rewrites random states miss

ALIASING_ORIGINAL = "ldr w1, [x0, #8]\nadd x6, x4, #3\nstrb w5, [x6]\nldr w2, [x0, #12]\n"
ALIASING_REWRITE = "ldp w1, w2, [x0, #8]\nadd x6, x4, #3\nstrb w5, [x6]\n"
"""The second load moved above a byte store that overlaps it only when ``x4 + 3`` is one of
``x0 + 12 .. x0 + 15``: never for the tester's 8-byte-aligned pointers, and its alias states
set ``x6``, which the block overwrites."""
CONSTANT_ORIGINAL = "cmp x1, #0x123\ncsel x0, x2, x3, eq\n"
CONSTANT_REWRITE = "cmp x1, #0x123\nmov x0, x3\n"
"""Wrong only when ``x1 == 0x123``: random pointers never are."""
VALUE_SPECIFIC = {
    "aliases at one unaligned address": (ALIASING_ORIGINAL, ALIASING_REWRITE,
                                         lambda r: (r["x4"] + 3 - r["x0"]) % 2**64 in range(12, 16)),
    "wrong when a register equals a constant": (CONSTANT_ORIGINAL, CONSTANT_REWRITE,
                                                lambda r: r["x1"] == 0x123 and r["x2"] != r["x3"]),
}


@pytest.mark.parametrize("name", VALUE_SPECIFIC)
def test_value_specific_corruptions_pass_the_tester_and_are_refuted(checker, name):
    original, rewrite, explains = VALUE_SPECIFIC[name]
    tested = EquivalenceChecker(states=8, seed=1).check(original, rewrite)
    assert tested.equivalent and tested.verdict == "tested"  # the random states miss it
    result = checker.check(original, rewrite)
    assert not result.equivalent and result.verdict == "refuted", result
    assert result.failure.kind in ("register", "memory") and "counterexample" in result.failure.detail
    example = result.counterexample
    assert explains(example.registers), example.describe()
    tools = Toolchain()
    assert checker._replay(tools.assemble(original), tools.assemble(rewrite), example) is not None


def test_a_legal_pairing_across_a_store_that_cannot_alias_is_proved(checker):
    original = "ldr w1, [x0, #8]\nstrb w5, [x0, #20]\nldr w2, [x0, #12]\n"
    result = checker.check(original, "ldp w1, w2, [x0, #8]\nstrb w5, [x0, #20]\n")
    assert result.equivalent and result.verdict == "proved"


def test_reordering_a_stack_store_past_a_pointer_load_is_proved(checker):
    """The precondition: an access through SP never overlaps one through another register."""
    original = "str x1, [sp, #8]\nldr x2, [x0]\n"
    assert checker.check(original, "ldr x2, [x0]\nstr x1, [sp, #8]\n").verdict == "proved"
    pointers = "str x1, [x3, #8]\nldr x2, [x0]\n"
    assert checker.check(pointers, "ldr x2, [x0]\nstr x1, [x3, #8]\n").verdict == "refuted"


def test_a_timeout_falls_back_to_the_random_states():
    hurried = EquivalenceChecker(states=8, seed=1, proof_time_limit=1e-4)
    result = hurried.check(ALIASING_ORIGINAL, ALIASING_REWRITE)
    assert result.equivalent and result.verdict == "tested" and "time limit" in result.note


def test_an_uncovered_instruction_falls_back_to_the_random_states(checker):
    result = checker.check("clz x0, x1\nadd x2, x3, #1\n", "add x2, x3, #1\nclz x0, x1\n")
    assert result.equivalent and result.verdict == "tested" and "Clz64" in result.note


# ------------------------------------------------------------------ LLVM's own rewrites


def test_llvm_rewrites_of_the_shipped_corpus_and_clang_are_proved(checker, oracle_functions):
    pairs = [(b.input, b.oracle) for b in load_corpus() if b.oracle and b.oracle != b.input]
    pairs += [pair for pair in oracle_functions.values() if pair[0] != pair[1]]
    assert len(pairs) >= 40 and any("fmadd" in after for _, after in pairs)
    results = checker.check_many(pairs)
    assert [r.verdict for r in results] == ["proved"] * len(pairs), \
        [(p, r) for p, r in zip(pairs, results, strict=True) if r.verdict != "proved"][:2]


def _untouched(written: str, *blocks: str) -> bool:
    """Whether register ``written`` appears in none of the blocks."""
    return all(canonical(written) not in {canonical(r) for i in parse_block(b)
                                          for r in i.reads() | i.writes()} for b in blocks)


def test_llvm_rewrites_of_the_csmith_corpora_are_proved_but_for_renamed_registers(checker):
    """LLVM's pass may rename a register it knows is dead after the block; the corpora do not
    record liveness, so those rewrites (and only those) are refuted, on that register."""
    pairs = [(b.input, b.oracle) for corpus in CORPORA[1:] for b in load_corpus(corpus)
             if b.oracle and b.oracle != b.input]
    results = checker.check_many(pairs)
    refuted = [(pair, r) for pair, r in zip(pairs, results, strict=True) if r.verdict != "proved"]
    assert len(pairs) >= 300 and len(refuted) <= len(pairs) // 10
    for (before, _), result in refuted:
        assert result.verdict == "refuted" and result.failure.kind == "register"
        register = result.failure.detail.split(" =")[0]
        assert _untouched(register, before), (register, before)


# ------------------------------------------------------------------ the environment


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A corpus of the two value-specific originals (with a pairing LLVM would make)."""
    path = tmp_path / "corpus.jsonl"
    blocks = [{"id": f"b{i}", "source": "test", "flags": "-O1", "function": "f", "index": i,
               "input": text, "oracle": None, "terminator": "ret"}
              for i, text in enumerate([ALIASING_ORIGINAL, CONSTANT_ORIGINAL])]
    path.write_text("".join(json.dumps(b) + "\n" for b in blocks))
    return path


def test_env_reports_verdicts_and_the_tested_share(corpus):
    env = gym.make("optarena/AArch64Peephole-v0", corpus=corpus, store=None,
                   proof_time_limit=10.0).unwrapped  # a refutation takes tens of ms, more if busy
    _, info = env.reset(options={"problem": "b0"})
    assert info["verdict"] == "proved"  # the block as compiled
    _, reward, _, _, info = env.rewrite(ALIASING_REWRITE)
    assert reward == 0.0 and info["verdict"] == "refuted"
    assert info["failure"]["kind"] in ("register", "memory")
    assert set(info["counterexample"]["registers"]) >= {"x0", "x4", "sp", "nzcv"}
    _, reward, _, _, info = env.rewrite(ALIASING_ORIGINAL.replace("#12]", "#12]\nnop"))
    assert info["verdict"] == "proved" and "invalid_action" not in info
    assert env.verdicts == {"refuted": 1, "proved": 1} and env.tested_share == 0.0
    env.close()


def test_env_without_proofs_tests_and_says_so(corpus):
    env = gym.make("optarena/AArch64Peephole-v0", corpus=corpus, store=None, prove=False).unwrapped
    env.reset(options={"problem": "b1"})
    _, _, _, _, info = env.rewrite(CONSTANT_REWRITE)
    assert "invalid_action" not in info and info["verdict"] == "tested"
    assert "no proof" in info["verdict_note"] and env.tested_share == 1.0
    assert env.problem()["checker"] == {"states": 8, "seed": 0}
    env.close()
