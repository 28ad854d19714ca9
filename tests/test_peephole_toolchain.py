"""The toolchain's process backend scores and assembles batches as it does single blocks, one
process per batch, and isolates the blocks the tools reject (the server backend, checked against
it: test_peephole_mcserver.py)."""

import os
import pickle
import shutil
import subprocess

import pytest

from optarena.envs.aarch64_peephole import toolchain as toolchain_module
from optarena.envs.aarch64_peephole.corpus import load_corpus
from optarena.envs.aarch64_peephole.toolchain import AssembleError, Toolchain, plain

GOOD = ["ldr x1, [x0, #8]\nldr x2, [x0, #16]\nadd x3, x1, x2\n", "ldp x1, x2, [x0, #8]\n",
        "add x0, x1, x2\nmul x3, x0, x0\n"]
BAD = {  # each with a valid line too, so that a shared run would have something to score
    "add x3, x1, x2\nldp x1, x2, [x0, #8\n": "line 2:1: error: too few operands for instruction",
    "foo x1\nadd x0, x0, x0\n": "line 1:1: error: unrecognized instruction mnemonic",
}


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    """Every distinct block of the shipped corpus, inputs and LLVM's oracle rewrites."""
    blocks = load_corpus()
    return list(dict.fromkeys([b.input for b in blocks] + [b.oracle for b in blocks if b.oracle]))


@pytest.fixture
def tool_runs(monkeypatch) -> list[str]:
    """The names of the programs the toolchain starts during the test."""
    started: list[str] = []
    run = subprocess.run

    def counting(args, *rest, **kwargs):
        started.append(os.path.basename(args[0]))
        return run(args, *rest, **kwargs)

    monkeypatch.setattr(toolchain_module.subprocess, "run", counting)
    return started


def process(**fields) -> Toolchain:
    """A toolchain that runs the tools themselves."""
    return Toolchain(backend="process", **fields)


def keystone_toolchain() -> Toolchain:
    try:
        return Toolchain(assembler="keystone")
    except toolchain_module.ToolMissing as err:
        if os.environ.get("OPTARENA_REQUIRE_KEYSTONE") == "1":
            pytest.fail(f"OPTARENA_REQUIRE_KEYSTONE=1 but: {err}")
        pytest.skip(str(err))


# ------------------------------------------------------------------ llvm-mca


def test_each_code_region_scores_what_the_block_scores_alone(corpus_texts, tool_runs):
    shared = process().cycles_many(corpus_texts, "neoverse-n1", 100)
    assert tool_runs.count("llvm-mca") == 2, "one run for -mcpu=help, one for every block"
    alone = []
    for asm in corpus_texts:
        alone.append(process().cycles(asm, "neoverse-n1", 100))
    assert shared == alone
    assert len(set(shared)) > 20, "the blocks differ, so must their cycles"


def test_a_block_llvm_mca_rejects_does_not_sink_the_others():
    blocks = [GOOD[0], *BAD, GOOD[1], GOOD[2]]
    results = process().cycles_many(blocks)
    for asm, result in zip(blocks, results, strict=True):
        if asm in BAD:
            assert isinstance(result, AssembleError) and result.message == BAD[asm]
        else:
            assert result == process().cycles(asm)


def test_a_failure_that_names_no_line_falls_back_to_one_run_per_block():
    # tsv110 has no model of casal: llvm-mca fails the whole run without saying where
    blocks = [GOOD[0], "casal x0, x1, [x2]\n", GOOD[2]]
    results = process().cycles_many(blocks, "tsv110")
    assert "unsupported instruction" in results[1].message
    assert results[0] == process().cycles(GOOD[0], "tsv110")
    assert results[2] == process().cycles(GOOD[2], "tsv110")


def test_a_block_with_an_invalid_line_is_rejected_not_scored_without_it():
    with pytest.raises(AssembleError, match="line 2"):
        Toolchain().cycles("add x0, x1, x2\nldp x1, x2, [x0, #8\n")


def test_an_unknown_cpu_is_named_with_the_valid_ones():
    tools = Toolchain()
    with pytest.raises(ValueError, match=r"'pentium'.*neoverse-n1.*tsv110"):
        tools.check_mcpu("pentium")
    with pytest.raises(ValueError, match="'pentium'"):
        tools.cycles(GOOD[0], "pentium")
    tools.check_mcpu("neoverse-n1")
    assert "cortex-a72" in tools.cpus()


def test_results_are_cached_and_the_cache_is_bounded(tool_runs):
    tools = process(cache_size=2)
    tools.cycles_many(GOOD[:2])
    tools.cycles(GOOD[1])
    assert tool_runs.count("llvm-mca") == 2
    tools.cycles(GOOD[2])
    tools.cycles(GOOD[0])  # forgotten: the least recently used of three with room for two
    assert tool_runs.count("llvm-mca") == 4


# ------------------------------------------------------------------ assembling


def reference_code(asm: str, tmp_path) -> bytes:
    """What the peephole environment used to run: llvm-mc, then llvm-objcopy for ``.text``."""
    obj, text = tmp_path / "block.o", tmp_path / "block.bin"
    subprocess.run(["llvm-mc", "-triple=aarch64", "-filetype=obj", "-o", str(obj)], input=asm,
                   text=True, check=True)
    subprocess.run(["llvm-objcopy", "-O", "binary", "--only-section=.text", str(obj), str(text)],
                   check=True)
    return text.read_bytes()


@pytest.mark.skipif(shutil.which("llvm-objcopy") is None, reason="the reference needs llvm-objcopy")
def test_batch_and_single_encodings_are_those_of_llvm_mc(corpus_texts, tool_runs, tmp_path):
    shared = process().assemble_many(corpus_texts)
    assert tool_runs == ["llvm-mc"]
    single = [process().assemble(asm) for asm in corpus_texts]
    reference = [reference_code(asm, tmp_path) for asm in corpus_texts]
    assert shared == single == reference
    assert all(len(code) == 4 * asm.strip().count("\n") + 4
               for asm, code in zip(corpus_texts, shared, strict=True))


def test_syntax_errors_are_reported_per_block_with_the_assemblers_message():
    blocks = [GOOD[0], *BAD, GOOD[1]]
    results = process().assemble_many(blocks)
    for asm, result in zip(blocks, results, strict=True):
        if asm in BAD:
            assert isinstance(result, AssembleError) and result.message == BAD[asm]
        else:
            assert result == process().assemble(asm)
    with pytest.raises(AssembleError, match=r"line 1:.*too few operands"):
        process().assemble("ldp x1, x2, [x0, #8\n")


def test_blocks_that_could_reach_into_others_are_assembled_alone():
    assert plain("ldr x1, [x0, #8]\n\tstp x1, x2, [sp, #-16]!\nb .+64\n")
    for text in ("loop:\nb loop\n", "n = 8\n", ".p2align 3\nnop\n", "nop // note\n",
                 "nop; nop\n", "ldr x1, =0x1234\n", "", "\n"):
        assert not plain(text), text
    # each defines `a`: sharing one llvm-mc run would make the second a redefinition
    labelled = ["a:\nadd x0, x0, #1\n", "a:\nadd x1, x1, #1\n"]
    # `n` is defined by the first block only: the second must not see it
    symbols = ["n = 8\nldr x1, [x0, #n]\n", "ldr x1, [x0, #n]\nadd x0, x0, x0\n"]
    results = process().assemble_many([*labelled, *symbols, GOOD[0], GOOD[1]])
    alone = [process().assemble_many([asm])[0] for asm in [*labelled, *symbols]]
    assert [str(r) for r in results[:4]] == [str(r) for r in alone]
    assert isinstance(alone[0], bytes) and isinstance(alone[1], bytes)


def test_prepare_fills_both_caches(tool_runs):
    tools = process()
    tools.prepare(GOOD)
    started = len(tool_runs)
    assert sorted(tool_runs) == ["llvm-mc", "llvm-mca", "llvm-mca"]
    tools.assemble_many(GOOD)
    tools.cycles_many(GOOD)
    assert len(tool_runs) == started


def test_a_toolchain_pickles_without_its_caches():
    tools = Toolchain(cache_size=8)
    tools.assemble(GOOD[0])
    copy = pickle.loads(pickle.dumps(tools))
    assert copy == tools and copy.cache_size == 8
    assert copy.assemble(GOOD[0]) == tools.assemble(GOOD[0])


def test_missing_assembler_names_the_debian_package():
    with pytest.raises(toolchain_module.ToolMissing, match="apt-get install"):
        Toolchain(llvm_mc="llvm-mc-does-not-exist").assemble_many(GOOD)
    with pytest.raises(ValueError, match="unknown assembler"):
        Toolchain(assembler="gas")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown backend"):
        Toolchain(backend="daemon")  # type: ignore[arg-type]


# ------------------------------------------------------------------ keystone (optional)


def test_keystone_encodings_are_those_of_llvm_mc(corpus_texts, tool_runs):
    keystone = keystone_toolchain()
    assert keystone.assemble_many(corpus_texts) == process().assemble_many(corpus_texts)
    assert tool_runs == ["llvm-mc"], "keystone assembled every corpus block in process"


def test_keystone_leaves_errors_to_llvm_mc():
    keystone = keystone_toolchain()
    # Keystone raises on some, returns nothing without a word on others: llvm-mc decides
    blocks = [GOOD[0], *BAD, "ldr x1, =0x1234\n", "ldp x1, x1, [x0]\n",
              "add x0, x1, x2\nldr x0, [x0], #8\nnop\n", "add x0, x1, x2\nldr x1, [x0, #8]!abc\n"]
    assert [str(r) for r in keystone.assemble_many(blocks)] == \
        [str(r) for r in process().assemble_many(blocks)]
    copy = pickle.loads(pickle.dumps(keystone))
    assert copy.assembler == "keystone" and copy.assemble(GOOD[1]) == Toolchain().assemble(GOOD[1])
