"""The llvm-mc/llvm-mca server gives what the tools give (the same code, cycles and error
messages, checked against the process backend), survives its own death, and says what is missing
when it cannot be built. Skipped where it cannot be built, unless OPTARENA_REQUIRE_MCSERVER=1."""

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from optarena.envs.aarch64_peephole import mcserver
from optarena.envs.aarch64_peephole.corpus import CSMITH_CORPUS, load_corpus
from optarena.envs.aarch64_peephole.mcserver import ServerUnavailable
from optarena.envs.aarch64_peephole.toolchain import AssembleError, Toolchain

GOOD = ["ldr x1, [x0, #8]\nldr x2, [x0, #16]\nadd x3, x1, x2\n", "add x0, x1, x2\nmul x3, x0, x0\n"]
MALFORMED = {  # block -> llvm-mc's message (None: llvm-mc takes it)
    "foo x1\nadd x0, x0, x0\n": "line 1:1: error: unrecognized instruction mnemonic",
    "add x0, x1, x99\n": "line 1:13: error: expected compatible register, symbol or integer in "
                         "range [0, 4095]",
    "add x0, x1, #99999999\n": "line 1:13: error: expected compatible register, symbol or integer "
                               "in range [0, 4095]",
    "add x3, x1, x2\nldp x1, x2, [x0, #8\n": "line 2:1: error: too few operands for instruction",
    "nop\x00nop\n": "line 1:5: error: invalid operand for instruction",
    "casal x0, x1, [x2]\n": "line 1:1: error: instruction requires: lse",
    "b 0x10000000\n": "line 1:3: error: expected label or encodable integer pc offset",
    ".error \"boom\"\n": "line 1:1: error: boom",
    "# 3 \"foo.c\"\nfoo x0\n": "foo.c:3:1: error: unrecognized instruction mnemonic",
    "": None, "\n": None, "\x00": None,
    "loop:\nadd x0, x0, #1\nb loop\n": None,
    "n = 8\nldr x1, [x0, #n]\n": None,
    ".p2align 4\nnop\n.rept 3\nadd x0, x0, #1\n.endr\n": None,
    ".macro m a\nadd x0, x0, #\\a\n.endm\nm 3\nm 4\n": None,
    ".section .text,\"ax\",@progbits,unique,1\nnop\n.text\nmov x0, #1\n": None,
    ".warning \"error here\"\nnop\n": None,
    ".word 0x12345678\n": None,
    "ldr x0, =0x1234\n": None,
    ".arch_extension lse\ncasal x0, x1, [x2]\n": None,
    "nop // note\nnop; nop\n": None,
    "# LLVM-MCA-BEGIN a\nnop\n# LLVM-MCA-END a\n# LLVM-MCA-BEGIN b\nmul x1, x1, x1\n"
    "# LLVM-MCA-END b\n": None,
    "# LLVM-MCA-BEGIN\n# LLVM-MCA-BEGIN\nnop\n": None,
    "# LLVM-MCA-END x\nnop\n": None,
}
# LLVM hits a fatal error (report_fatal_error) on this one: the tool aborts, the server dies
FATAL = ".bundle_align_mode 4\n.bundle_lock\nnop\nnop\nnop\nnop\nnop\n.bundle_unlock\n"


@pytest.fixture(scope="module")
def served() -> None:
    """Skip unless the server builds and starts here (fail instead with
    OPTARENA_REQUIRE_MCSERVER=1)."""
    try:
        Toolchain(backend="server").assemble("nop\n")
    except ServerUnavailable as err:
        if os.environ.get("OPTARENA_REQUIRE_MCSERVER") == "1":
            pytest.fail(f"OPTARENA_REQUIRE_MCSERVER=1 but: {err}")
        pytest.skip(f"the llvm-mc/llvm-mca server cannot be built here: {err}")


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    """The shipped corpus and 300 csmith blocks (spread over the corpus), inputs and oracles."""
    shipped = load_corpus()
    csmith = load_corpus(CSMITH_CORPUS)
    chosen = [*shipped, *csmith[::len(csmith) // 300][:300]]
    return list(dict.fromkeys([b.input for b in chosen] + [b.oracle for b in chosen if b.oracle]))


@pytest.fixture
def processes(monkeypatch) -> list[list[str]]:
    """The command lines subprocess.run starts during the test."""
    started: list[list[str]] = []
    run = subprocess.run

    def counting(args, *rest, **kwargs):
        started.append([os.path.basename(args[0]), *args[1:]])
        return run(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    return started


def same(left: list, right: list) -> bool:
    """Equal results, errors compared by message."""
    return [repr(r) for r in left] == [repr(r) for r in right]


# ------------------------------------------------------------------ the tools' results


def test_corpus_code_is_llvm_mcs(served, corpus_texts, processes):
    codes = Toolchain(backend="server").assemble_many(corpus_texts)
    assert [args for args in processes if args[0] == "llvm-mc"] == [["llvm-mc", "--version"]], \
        "the server assembled every block"
    assert codes == Toolchain(backend="process").assemble_many(corpus_texts)
    assert all(isinstance(code, bytes) and len(code) % 4 == 0 and code for code in codes)


@pytest.mark.parametrize("mcpu", ["neoverse-n1", "cortex-a55"])
@pytest.mark.parametrize("iterations", [100, 7])
def test_corpus_cycles_are_llvm_mcas(served, corpus_texts, processes, mcpu, iterations):
    cycles = Toolchain(backend="server").cycles_many(corpus_texts, mcpu, iterations)
    assert sorted(args[1:] for args in processes if args[0] == "llvm-mca") == \
        [["--version"], ["-mtriple=aarch64", "-mcpu=help"]], "the server scored every block"
    assert cycles == Toolchain(backend="process").cycles_many(corpus_texts, mcpu, iterations)
    assert all(isinstance(c, int) for c in cycles) and len(set(cycles)) > 20


def test_malformed_blocks_get_the_tools_messages(served):
    blocks = [*MALFORMED, FATAL, GOOD[0]]
    server, process = Toolchain(backend="server"), Toolchain(backend="process")
    codes = server.assemble_many(blocks)
    assert same(codes, process.assemble_many(blocks))
    for block, code in zip(MALFORMED, codes, strict=False):
        if MALFORMED[block] is None:
            assert isinstance(code, bytes), block
        else:
            assert isinstance(code, AssembleError) and code.message == MALFORMED[block], block
    for mcpu in ("neoverse-n1", "cortex-a55", "tsv110"):
        cycles = dict(zip(blocks, server.cycles_many(blocks, mcpu, 7), strict=True))
        assert same(list(cycles.values()), process.cycles_many(blocks, mcpu, 7)), mcpu
        assert cycles[""].message == "error: no assembly instructions found."
        assert cycles["# LLVM-MCA-BEGIN\n# LLVM-MCA-BEGIN\nnop\n"].message == \
            "line 2:2: error: found multiple overlapping anonymous regions"
        assert isinstance(cycles[FATAL], int) and isinstance(cycles[GOOD[0]], int)


def test_blocks_that_read_files_go_to_the_tools(served, tmp_path, monkeypatch):
    tools = Toolchain(backend="server")
    tools.assemble(GOOD[0])  # the server starts here, in another working directory
    monkeypatch.chdir(tmp_path)
    (tmp_path / "code.bin").write_bytes(bytes.fromhex("1f2003d5"))
    block = '.incbin "code.bin"\n.include "absent.s"\n'
    assert same(tools.assemble_many([block, '.incbin "code.bin"\n']),
                Toolchain(backend="process").assemble_many([block, '.incbin "code.bin"\n']))
    assert tools.assemble('.INCBIN "code.bin"\n') == bytes.fromhex("1f2003d5")


# ------------------------------------------------------------------ the server's life


def test_a_killed_server_is_restarted_transparently(served, processes):
    tools = Toolchain(backend="server")
    tools.assemble(GOOD[0])
    server = tools._memo.servers["assemble"]
    first = server.pid
    os.kill(first, signal.SIGKILL)
    code = tools.assemble(GOOD[1])
    assert processes == [["llvm-mc", "--version"]], "the restarted server assembled it"
    assert server.pid not in (None, first)
    assert code == Toolchain(backend="process").assemble(GOOD[1])


def test_a_fatal_llvm_error_costs_the_server_not_the_batch(served, processes):
    tools = Toolchain(backend="server")
    tools.assemble(GOOD[0])
    first = tools._memo.servers["assemble"].pid
    blocks = ["add x0, x0, x0\n", FATAL, "mul x0, x0, x0\n", "udiv x0, x1, x2\n"]
    codes = tools.assemble_many(blocks)
    assert [args[0] for args in processes].count("llvm-mc") == 2, \
        "llvm-mc --version, then llvm-mc for the block the server died on only"
    assert tools._memo.servers["assemble"].pid not in (None, first)
    assert same(codes, Toolchain(backend="process").assemble_many(blocks))
    assert codes[1].message == "LLVM ERROR: Fragment can't be larger than a bundle size"


def test_prepare_serves_both_kinds_at_once_and_fills_the_caches(served, monkeypatch):
    tools = Toolchain(backend="server")
    tools.prepare(GOOD, "cortex-a55", 7)
    time.sleep(0.2)  # a server started by one of prepare's threads would die with it
    servers = tools._memo.servers
    assert sorted(servers) == ["assemble", "cycles"]
    assert all(server.pid is not None for server in servers.values())

    def no_request(*args):
        raise AssertionError("a request after prepare")

    monkeypatch.setattr(mcserver.MCServer, "_serve", no_request)
    assert tools.assemble_many(GOOD) == Toolchain(backend="process").assemble_many(GOOD)
    assert tools.cycles_many(GOOD, "cortex-a55", 7) == \
        Toolchain(backend="process").cycles_many(GOOD, "cortex-a55", 7)


def test_a_toolchain_pickles_without_its_servers(served):
    tools = Toolchain(backend="server", cache_size=8)
    tools.prepare(GOOD)
    copy = pickle.loads(pickle.dumps(tools))
    assert copy == tools and copy._memo.servers == {}
    assert copy.cycles(GOOD[0]) == tools.cycles(GOOD[0])
    assert copy._memo.servers["cycles"].pid != tools._memo.servers["cycles"].pid


def _assemble_in_fork(tools: Toolchain, queue) -> None:
    queue.put((os.getpid(), tools.assemble(GOOD[1]), tools._memo.servers["assemble"].pid))


def test_a_forked_copy_starts_its_own_server(served):
    tools = Toolchain(backend="server")
    tools.assemble(GOOD[0])
    parent = tools._memo.servers["assemble"].pid
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_assemble_in_fork, args=(tools, queue))
    child.start()
    pid, code, server = queue.get(timeout=60)
    child.join()
    assert code == Toolchain(backend="process").assemble(GOOD[1])
    assert server not in (None, parent) and pid == child.pid
    assert tools._memo.servers["assemble"].pid == parent
    assert tools.assemble_many(GOOD[::-1]) == Toolchain(backend="process").assemble_many(GOOD[::-1])


# ------------------------------------------------------------------ building


def test_a_missing_llvm_config_is_named_and_auto_falls_back():
    broken = "/nonexistent/llvm-config"
    with pytest.raises(ServerUnavailable, match=r"llvm-config not found.*apt-get install llvm-14-dev"):
        Toolchain(backend="server", llvm_config=broken).assemble("nop\n")
    tools = Toolchain(llvm_config=broken)
    with pytest.warns(UserWarning, match=r"llvm-config not found.*processes instead"):
        code = tools.assemble_many([GOOD[0], "foo x1\n"])
    assert same(code, Toolchain(backend="process").assemble_many([GOOD[0], "foo x1\n"]))
    assert tools._memo.servers == {}


def fake_llvm_config(tmp_path, **overrides: str) -> str:
    """An llvm-config that answers like the real one except for ``overrides`` (flag -> output)."""
    real = mcserver.find_llvm_config()
    cases = "".join(f"  --{flag.replace('_', '-')}) echo '{out}' ;;\n"
                    for flag, out in overrides.items())
    script = tmp_path / "llvm-config"
    script.write_text(f'#!/bin/sh\ncase "$1" in\n{cases}  *) exec {real} "$@" ;;\nesac\n')
    script.chmod(0o755)
    return str(script)


def test_build_failures_name_what_is_missing(served, tmp_path):
    no_headers = fake_llvm_config(tmp_path, includedir=str(tmp_path))
    with pytest.raises(ServerUnavailable, match=r"headers are not in .*apt-get install llvm-14-dev"):
        mcserver.build(no_headers, cache=tmp_path / "a")
    real = subprocess.run([mcserver.find_llvm_config(), "--cxxflags"], capture_output=True,
                          text=True, check=True).stdout.strip()
    broken = fake_llvm_config(tmp_path, cxxflags=f"{real} -include {tmp_path}/absent.h")
    with pytest.raises(ServerUnavailable, match=r"absent\.h.*llvm-14-dev"):
        mcserver.build(broken, cache=tmp_path / "b")
    assert not list((tmp_path / "b").iterdir()), "no partial binary left"


def test_a_server_of_another_llvm_version_is_refused(served, tmp_path):
    other = tmp_path / "llvm-mc"
    other.write_text("#!/bin/sh\necho 'LLVM (http://llvm.org/):'\necho '  LLVM version 99.0.0'\n")
    other.chmod(0o755)
    with pytest.raises(ServerUnavailable, match=r"links LLVM 14\.\d+\.\d+, but .*LLVM 99\.0\.0"):
        Toolchain(backend="server", llvm_mc=str(other)).assemble("nop\n")


def test_concurrent_builds_share_one_binary(served, tmp_path):
    build = textwrap.dedent(f"""
        from pathlib import Path
        from optarena.envs.aarch64_peephole.mcserver import build
        print(build(cache=Path({str(tmp_path)!r})))
    """)
    runs = [subprocess.Popen([sys.executable, "-c", build], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    paths = {run.communicate()[0].strip() for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert len(paths) == 1 and [p.name for p in tmp_path.iterdir()] == [os.path.basename(*paths)]
    assert subprocess.run([*paths, "aarch64"], input=b"", capture_output=True).returncode == 0
