"""The peephole environment's train/test splits, by *source function*: a function's blocks, at
every optimization level, are all on one side. A fifth of the functions are held out, chosen by a
fixed hash. Only blocks with at least one legal rewrite are in a split.

``peephole-csmith/v1``: the blocks of 60 csmith programs at -O0/-O1/-O2 (the shipped
``csmith-v1`` corpus). Held out within two strata -- the functions where LLVM's own load/store
optimizer changes a block, and the others -- so that the test side has blocks on which the
policy's saving can be compared with LLVM's. Most of its blocks are -O0 code, which LLVM's
optimizer never touches (it does not run at -O0): there the anchor saves nothing.

``peephole-csmith-opt/v1``: the blocks LLVM's optimizer changes in 400 more csmith programs
(``csmith --seed 61..460``) at -O1 and -O2 (the shipped ``csmith-opt-v1`` corpus:
``optarena peephole build-corpus --opt O1,O2 --csmith 400 --csmith-seed 61
--unchanged-share 0``): every block has LLVM's result as its anchor, so a policy's saving is a
share of LLVM's.
"""

from __future__ import annotations

import functools
from pathlib import Path

from optarena.envs.aarch64_peephole.block import parse_block
from optarena.envs.aarch64_peephole.corpus import CSMITH_CORPUS, BlockPair, load_corpus
from optarena.envs.aarch64_peephole.space import PeepholeSpace
from optarena.envs.splits import Split, held_out

MAX_INSTRUCTIONS = 64
CSMITH_OPT_CORPUS = Path(__file__).parent / "data" / "csmith-opt-v1.jsonl.gz"


def _function(block: BlockPair) -> str:
    return f"{block.source}/{block.function}"


@functools.cache
def _divide(corpus: Path, salt: str) -> tuple[dict[str, str], tuple[list[str], list[str]]]:
    """Block id -> source function, and the (train, test) ids of the corpus's playable blocks."""
    blocks = [b for b in load_corpus(corpus) if len(parse_block(b.input)) <= MAX_INSTRUCTIONS]
    space = PeepholeSpace(blocks, MAX_INSTRUCTIONS)
    playable = [b for b in blocks if space.sites(space.initial(b.id, None).asm)]  # type: ignore[arg-type]
    groups = {b.id: _function(b) for b in playable}
    paired = {_function(b) for b in blocks if b.oracle is not None and b.oracle != b.input}
    test_groups: set[str] = set()
    for stratum in (sorted(set(groups.values()) & paired), sorted(set(groups.values()) - paired)):
        test_groups |= set(held_out(stratum, share=0.2, salt=salt))
    test = [b.id for b in playable if groups[b.id] in test_groups]
    train = [b.id for b in playable if groups[b.id] not in test_groups]
    return groups, (train, test)


def _split(name: str, corpus: Path, description: str) -> Split:
    salt = f"{name}/v1"
    return Split(name, 1, "aarch64_peephole", description,
                 divide=lambda: _divide(corpus, salt)[1],
                 group=lambda block: _divide(corpus, salt)[0][block],
                 kwargs={"corpus": str(corpus), "max_instructions": MAX_INSTRUCTIONS})


SPLITS = (
    _split("peephole-csmith", CSMITH_CORPUS,
           "blocks of 60 csmith programs (-O0/-O1/-O2) with a legal rewrite, by source function "
           "(a fifth of the functions held out)"),
    _split("peephole-csmith-opt", CSMITH_OPT_CORPUS,
           "the blocks LLVM's load/store optimizer changes in 400 csmith programs at -O1/-O2, "
           "by source function (a fifth held out); LLVM's result is every block's anchor"),
)
