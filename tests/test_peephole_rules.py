"""Load/store pairing: legal sites pair (and verify), illegal ones do not."""

import pytest

from optarena.envs.aarch64_peephole.block import format_block, parse_block
from optarena.envs.aarch64_peephole.check import EquivalenceChecker
from optarena.envs.aarch64_peephole.rules import pair_sites

LEGAL = {
    "x loads": ("ldr x1, [x0, #8]\nldr x2, [x0, #16]\n", "ldp x1, x2, [x0, #8]"),
    "descending offsets": ("ldr x1, [x0, #16]\nldr x2, [x0, #8]\n", "ldp x2, x1, [x0, #8]"),
    "w stores": ("str w1, [sp, #4]\nstr w2, [sp, #8]\n", "stp w1, w2, [sp, #4]"),
    "unscaled": ("ldur x1, [x0, #-8]\nldur x2, [x0]\n", "ldp x1, x2, [x0, #-8]"),
    "scaled with unscaled": ("ldr d0, [x3, #8]\nldur d1, [x3, #16]\n", "ldp d0, d1, [x3, #8]"),
    "s registers": ("ldr s0, [x1]\nldr s1, [x1, #4]\n", "ldp s0, s1, [x1]"),
    "q registers": ("str q0, [x0, #32]\nstr q1, [x0, #48]\n", "stp q0, q1, [x0, #32]"),
    "ldrsw": ("ldrsw x1, [x0]\nldrsw x2, [x0, #4]\n", "ldpsw x1, x2, [x0]"),
    "unrelated instruction between":
        ("ldr x1, [x0]\nadd x5, x6, x7\nldr x2, [x0, #8]\n", "ldp x1, x2, [x0]"),
    "store between, same base, disjoint":
        ("ldr x1, [x0]\nstr x5, [x0, #32]\nldr x2, [x0, #8]\n", "ldp x1, x2, [x0]"),
    "first moves down past a read of the second's register":
        ("ldr x1, [x0]\nadd x3, x2, #1\nldr x2, [x0, #8]\n", "ldp x1, x2, [x0]"),
    "first store moves down past a write of the second's register":
        ("str x1, [x0]\nmov x2, #7\nstr x2, [x0, #8]\n", "stp x1, x2, [x0]"),
    "highest legal offset": ("ldr x1, [x0, #504]\nldr x2, [x0, #512]\n", "ldp x1, x2, [x0, #504]"),
}

ILLEGAL = {
    "different base": "ldr x1, [x0]\nldr x2, [x3, #8]\n",
    "not adjacent": "ldr x1, [x0]\nldr x2, [x0, #16]\n",
    "offset out of range": "ldr x1, [x0, #512]\nldr x2, [x0, #520]\n",
    "misaligned unscaled": "ldur x1, [x0, #4]\nldur x2, [x0, #12]\n",
    "same destination": "ldr x1, [x0]\nldr x1, [x0, #8]\n",
    "first load writes the base": "ldr x0, [x0]\nldr x1, [x0, #8]\n",
    "base written between": "ldr x1, [x0]\nadd x0, x0, #8\nldr x2, [x0, #8]\n",
    "both registers read between": "ldr x1, [x0]\nadd x3, x2, x1\nldr x2, [x0, #8]\n",
    "both registers written between": "str x1, [x0]\nmov x2, x1\nmov x1, #7\nstr x2, [x0, #8]\n",
    "store between may alias": "ldr x1, [x0]\nstr x5, [x4]\nldr x2, [x0, #8]\n",
    "load between a store pair may alias": "str x1, [x0]\nldr x5, [x4]\nstr x2, [x0, #8]\n",
    "call between": "ldr x1, [x0]\nbl foo\nldr x2, [x0, #8]\n",
    "different register classes": "ldr w1, [x0]\nldr x2, [x0, #4]\n",
    "load with store": "ldr x1, [x0]\nstr x2, [x0, #8]\n",
    "pre-indexed": "ldr x1, [x0, #8]!\nldr x2, [x0, #8]\n",
    "narrow loads": "ldrb w1, [x0]\nldrb w2, [x0, #1]\n",
}


@pytest.fixture(scope="module")
def checker() -> EquivalenceChecker:
    return EquivalenceChecker(states=8, seed=2)


@pytest.mark.parametrize("case", sorted(LEGAL))
def test_legal_sites_pair_and_verify(case, checker):
    asm, merged = LEGAL[case]
    block = parse_block(asm)
    sites = pair_sites(block)
    assert len(sites) == 1
    rewritten = sites[0].apply(block)
    assert str(sites[0].replacement).split() == merged.replace(",", ", ").split()
    assert checker.check(asm, format_block(rewritten)).equivalent


@pytest.mark.parametrize("case", sorted(ILLEGAL))
def test_illegal_sites_do_not_pair(case):
    assert pair_sites(parse_block(ILLEGAL[case])) == []


def test_scan_window_is_twenty_instructions():
    filler = "add x5, x6, x7\n"
    near = "ldr x1, [x0]\n" + filler * 19 + "ldr x2, [x0, #8]\n"
    far = "ldr x1, [x0]\n" + filler * 20 + "ldr x2, [x0, #8]\n"
    assert len(pair_sites(parse_block(near))) == 1
    assert pair_sites(parse_block(far)) == []


def test_block_prints_back_to_valid_assembly(checker):
    asm = "ldp x1, x2, [x0, #8]\nstr q0, [sp, #-16]!\nldr x3, [x1], #8\nadd x4, x3, x2, lsl #2\n"
    block = parse_block(asm)
    assert [i.mnemonic for i in block] == ["ldp", "str", "ldr", "add"]
    assert block[1].memory.mode == "pre" and block[2].memory.mode == "post"
    assert checker.check(asm, format_block(block)).equivalent


def greedy(asm: str) -> str:
    """Apply the first legal pairing until none is left."""
    block = parse_block(asm)
    while sites := pair_sites(block):
        block = sites[0].apply(block)
    return format_block(block)


def test_greedy_pairing_matches_the_oracle_savings_on_sample_functions(checker, oracle_functions):
    from optarena.envs.aarch64_peephole.toolchain import Toolchain

    tools = Toolchain()
    saved_oracle = saved_greedy = 0
    for name, (asm, oracle) in oracle_functions.items():
        ours = greedy(asm)
        assert checker.check(asm, ours).equivalent, name
        start = tools.cycles(asm)
        saved_oracle += start - tools.cycles(oracle)
        saved_greedy += start - tools.cycles(ours)
    assert saved_oracle > 0
    assert saved_greedy >= 0.95 * saved_oracle


FOLD_LEGAL = {
    "post-index load": ("ldr x1, [x0]\nadd x0, x0, #8\n", "ldr x1, [x0], #8"),
    "post-index store, sub": ("str w1, [x2]\nsub x2, x2, #4\n", "str w1, [x2], #-4"),
    "pre-index from a later update": ("ldr d0, [x3, #16]\nadd x3, x3, #16\n", "ldr d0, [x3, #16]!"),
    "pre-index from an earlier update": ("add x0, x0, #32\nldr q0, [x0]\n", "ldr q0, [x0, #32]!"),
    "update across unrelated code": ("ldr x1, [x0]\nmul x5, x6, x7\nadd x0, x0, #8\n",
                                     "ldr x1, [x0], #8"),
    "stack pointer": ("str x19, [sp]\nsub sp, sp, #16\n", "str x19, [sp], #-16"),
}
FOLD_ILLEGAL = {
    "base read between": "ldr x1, [x0]\nadd x5, x0, #1\nadd x0, x0, #8\n",
    "update too large": "ldr x1, [x0]\nadd x0, x0, #256\n",
    "offset differs from update": "ldr x1, [x0, #8]\nadd x0, x0, #16\n",
    "data register is the base": "ldr x0, [x0]\nadd x0, x0, #8\n",
    "update of another register": "ldr x1, [x0]\nadd x0, x2, #8\n",
    "call between": "ldr x1, [x0]\nbl foo\nadd x0, x0, #8\n",
}


@pytest.mark.parametrize("case", sorted(FOLD_LEGAL))
def test_base_updates_fold_and_verify(case, checker):
    from optarena.envs.aarch64_peephole.rules import fold_sites

    asm, merged = FOLD_LEGAL[case]
    site = _only_site_verified(fold_sites, asm, merged, checker)
    assert site.rule in ("pre_index", "post_index")


@pytest.mark.parametrize("case", sorted(FOLD_ILLEGAL))
def test_illegal_base_updates_do_not_fold(case):
    from optarena.envs.aarch64_peephole.rules import fold_sites

    assert fold_sites(parse_block(FOLD_ILLEGAL[case])) == []


ZERO_LEGAL = {
    "bytes": ("strb wzr, [x0, #2]\nstrb wzr, [x0, #3]\n", "strh wzr, [x0, #2]"),
    "halfwords, descending": ("strh wzr, [x1, #6]\nstrh wzr, [x1, #4]\n", "str wzr, [x1, #4]"),
    "words into xzr": ("str wzr, [sp, #8]\nstr wzr, [sp, #12]\n", "str xzr, [sp, #8]"),
    "unaligned becomes unscaled": ("str wzr, [x0, #4]\nstr wzr, [x0, #8]\n", "stur xzr, [x0, #4]"),
    "negative offsets": ("sturh wzr, [x2, #-4]\nsturh wzr, [x2, #-2]\n", "stur wzr, [x2, #-4]"),
}
ZERO_ILLEGAL = {
    "not zero": "strb w1, [x0]\nstrb wzr, [x0, #1]\n",
    "not adjacent": "strb wzr, [x0]\nstrb wzr, [x0, #2]\n",
    "different sizes": "strb wzr, [x0]\nstrh wzr, [x0, #1]\n",
    "load between may alias": "strh wzr, [x0]\nldrh w3, [x5]\nstrh wzr, [x0, #2]\n",
    "out of unscaled range": "str wzr, [x0, #300]\nstr wzr, [x0, #304]\n",
}


@pytest.mark.parametrize("case", sorted(ZERO_LEGAL))
def test_zero_stores_merge_and_verify(case, checker):
    from optarena.envs.aarch64_peephole.rules import zero_store_sites

    asm, merged = ZERO_LEGAL[case]
    _only_site_verified(zero_store_sites, asm, merged, checker)


@pytest.mark.parametrize("case", sorted(ZERO_ILLEGAL))
def test_illegal_zero_stores_do_not_merge(case):
    from optarena.envs.aarch64_peephole.rules import zero_store_sites

    assert zero_store_sites(parse_block(ZERO_ILLEGAL[case])) == []


def _only_site_verified(find_sites, asm, merged, checker):
    """The one site ``find_sites`` finds in ``asm``: it merges into ``merged`` and verifies."""
    block = parse_block(asm)
    sites = find_sites(block)
    assert len(sites) == 1
    assert str(sites[0].replacement).split() == merged.replace(",", ", ").split()
    assert checker.check(asm, format_block(sites[0].apply(block))).equivalent
    return sites[0]
