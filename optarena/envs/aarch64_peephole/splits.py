"""The peephole environment's train/test splits.

``peephole-csmith/v1``: the blocks of 60 csmith programs at -O0/-O1/-O2 (the shipped
``csmith-v1`` corpus) that have at least one legal rewrite, divided by *source function*: a
function's blocks, at every optimization level, are all on one side. A fifth of the functions
are held out, chosen by a fixed hash within two strata -- the functions where LLVM's own
load/store optimizer changes a block, and the others -- so that the test side has blocks on which
the policy's saving can be compared with LLVM's.
"""

from __future__ import annotations

import functools

from optarena.envs.aarch64_peephole.block import parse_block
from optarena.envs.aarch64_peephole.corpus import CSMITH_CORPUS, BlockPair, load_corpus
from optarena.envs.aarch64_peephole.space import PeepholeSpace
from optarena.envs.splits import Split, held_out

MAX_INSTRUCTIONS = 64


def _function(block: BlockPair) -> str:
    return f"{block.source}/{block.function}"


@functools.cache
def _csmith() -> tuple[dict[str, str], tuple[list[str], list[str]]]:
    """Block id -> source function, and the (train, test) block ids."""
    blocks = [b for b in load_corpus(CSMITH_CORPUS)
              if len(parse_block(b.input)) <= MAX_INSTRUCTIONS]
    space = PeepholeSpace(blocks, MAX_INSTRUCTIONS)
    playable = [b for b in blocks if space.sites(space.initial(b.id, None).asm)]  # type: ignore[arg-type]
    groups = {b.id: _function(b) for b in playable}
    paired = {_function(b) for b in blocks if b.oracle is not None and b.oracle != b.input}
    test_groups: set[str] = set()
    for stratum in (sorted(set(groups.values()) & paired), sorted(set(groups.values()) - paired)):
        test_groups |= set(held_out(stratum, share=0.2, salt="peephole-csmith/v1"))
    test = [b.id for b in playable if groups[b.id] in test_groups]
    train = [b.id for b in playable if groups[b.id] not in test_groups]
    return groups, (train, test)


SPLITS = (
    Split("peephole-csmith", 1, "aarch64_peephole",
          "blocks of 60 csmith programs (-O0/-O1/-O2) with a legal rewrite, by source function "
          "(a fifth of the functions held out)",
          divide=lambda: _csmith()[1], group=lambda block: _csmith()[0][block],
          kwargs={"corpus": str(CSMITH_CORPUS), "max_instructions": MAX_INSTRUCTIONS}),
)
