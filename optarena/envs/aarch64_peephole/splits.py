"""The peephole environment's train/test splits, by *source function*: a function's blocks, at
every optimization level, are all on one side. A fifth of the functions are held out, chosen by a
fixed hash. Only blocks with at least one legal rewrite are in a split.

A split's version fixes its problems: the division is computed once (:func:`compute_division`:
the rewrite rules find the playable blocks, 10 s for ``csmith-v1``) and shipped in
``data/splits.jsonl.gz``, so that training and testing start at once and a change of the rules
cannot move a block across a published split unnoticed (a test recomputes the division and
compares; a changed one is a new version). ``python -m optarena.envs.aarch64_peephole.splits``
writes the file.

``peephole-csmith/v1``: the blocks of 60 csmith programs at -O0/-O1/-O2 (the shipped
``csmith-v1`` corpus). Held out within two strata -- the functions where LLVM's own load/store
optimizer changes a block, and the others -- so that the test side has blocks on which the
policy's saving can be compared with LLVM's. Most of its blocks are -O0 code, which LLVM's
optimizer never touches (it does not run at -O0): there the anchor saves nothing.

``peephole-csmith/v2`` and ``peephole-csmith-opt/v2``: the same corpora with the deep rules
(``rules: deep``, :mod:`~optarena.envs.aarch64_peephole.space`); a block is playable when a rule
other than a swap applies at its start; the held-out functions are ranked by v1's hash (v1's
salt), so the two versions hold out mostly the same functions.

``peephole-csmith-opt/v1``: the blocks LLVM's optimizer changes in 400 more csmith programs
(``csmith --seed 61..460``) at -O1 and -O2 (the shipped ``csmith-opt-v1`` corpus:
``optarena peephole build-corpus --opt O1,O2 --csmith 400 --csmith-seed 61
--unchanged-share 0``): every block has LLVM's result as its anchor, so a policy's saving is a
share of LLVM's.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import NamedTuple

from optarena.envs.aarch64_peephole.corpus import (
    CSMITH_CORPUS,
    MAX_INSTRUCTIONS,
    BlockPair,
    select_blocks,
)
from optarena.envs.aarch64_peephole.space import PeepholeSpace
from optarena.envs.host import replacing
from optarena.envs.splits import Split, held_out

CSMITH_OPT_CORPUS = Path(__file__).parent / "data" / "csmith-opt-v1.jsonl.gz"


def _function(block: BlockPair) -> str:
    return f"{block.source}/{block.function}"


DIVISIONS = Path(__file__).parent / "data" / "splits.jsonl.gz"
"""Each split's shipped division: a JSON line ``{"split", "groups", "test"}`` per split."""


class Division(NamedTuple):
    """A split's problems: the source function of each playable block (in corpus order), and the
    blocks held out for testing."""

    groups: dict[str, str]
    test: frozenset[str]

    def sides(self) -> tuple[list[str], list[str]]:
        """The (train, test) block ids, in corpus order."""
        return ([b for b in self.groups if b not in self.test],
                [b for b in self.groups if b in self.test])


def compute_division(corpus: Path, salt: str, rules: str = "load-store") -> Division:
    """The playable blocks of ``corpus`` (at most :data:`MAX_INSTRUCTIONS` instructions, a legal
    rewrite of ``rules`` other than a swap), their source functions, and the functions held out
    by ``salt``'s hash."""
    blocks = select_blocks(corpus)
    space = PeepholeSpace(blocks, MAX_INSTRUCTIONS, rules=rules)
    playable = [b for b in blocks if any(
        site.family != "swap"
        for site in space.sites(space.initial(b.id, None).asm).values())]  # type: ignore[arg-type]
    groups = {b.id: _function(b) for b in playable}
    paired = {_function(b) for b in blocks if b.oracle is not None and b.oracle != b.input}
    test_groups: set[str] = set()
    for stratum in (sorted(set(groups.values()) & paired), sorted(set(groups.values()) - paired)):
        test_groups |= set(held_out(stratum, share=0.2, salt=salt))
    return Division(groups, frozenset(b for b, g in groups.items() if g in test_groups))


@functools.cache
def shipped_divisions() -> dict[str, Division]:
    """Every split's division as shipped in :data:`DIVISIONS` (read once), by split id."""
    with gzip.open(DIVISIONS, "rt") as lines:
        entries = [json.loads(line) for line in lines]
    return {e["split"]: Division(e["groups"], frozenset(e["test"])) for e in entries}


def shipped_division(split_id: str) -> Division:
    """``split_id``'s division as shipped in :data:`DIVISIONS`."""
    if split_id not in shipped_divisions():
        raise ValueError(f"{DIVISIONS} has no division of {split_id!r}: run python -m "
                         "optarena.envs.aarch64_peephole.splits to write it")
    return shipped_divisions()[split_id]


def _split(name: str, corpus: Path, description: str, version: int = 1,
           rules: str | None = None) -> Split:
    """A split of ``corpus`` played with ``rules`` (None: the environment's default, LLVM's
    load/store rules); every version's held-out functions are ranked by version 1's hash."""
    split_id = f"{name}/v{version}"
    chosen = {} if rules is None else {"rules": rules}
    return Split(name, version, "aarch64_peephole", description,
                 divide=lambda: shipped_division(split_id).sides(),
                 group=lambda block: shipped_division(split_id).groups[block],
                 kwargs={"corpus": str(corpus), "max_instructions": MAX_INSTRUCTIONS, **chosen})


def write_divisions(path: Path = DIVISIONS) -> None:
    """Compute every split's division and write them to ``path``."""
    lines = []
    for split in SPLITS:
        division = compute_division(Path(split.kwargs["corpus"]), f"{split.name}/v1",
                                    split.kwargs.get("rules", "load-store"))
        lines.append(json.dumps({"split": split.id, "groups": division.groups,
                                 "test": sorted(division.test)}) + "\n")
    with replacing(path) as partial:  # mtime 0: the same divisions give the same bytes
        partial.write_bytes(gzip.compress("".join(lines).encode(), mtime=0))


SPLITS = (
    _split("peephole-csmith", CSMITH_CORPUS,
           "blocks of 60 csmith programs (-O0/-O1/-O2) with a legal rewrite, by source function "
           "(a fifth of the functions held out)"),
    _split("peephole-csmith-opt", CSMITH_OPT_CORPUS,
           "the blocks LLVM's load/store optimizer changes in 400 csmith programs at -O1/-O2, "
           "by source function (a fifth held out); LLVM's result is every block's anchor"),
    _split("peephole-csmith", CSMITH_CORPUS,
           "v1's corpus with the deep rules (forwarding, dead stores and definitions, fusion, "
           "scheduling): the blocks with a legal rewrite other than a swap, v1's functions "
           "held out", version=2, rules="deep"),
    _split("peephole-csmith-opt", CSMITH_OPT_CORPUS,
           "v1's corpus with the deep rules: the blocks with a legal rewrite other than a swap, "
           "v1's functions held out", version=2, rules="deep"),
)


if __name__ == "__main__":
    write_divisions()
