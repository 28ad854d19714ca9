"""The LLM free-form rewrite task of an experiment (a config's ``rewrites:`` section).

For every seed the LLM rewrites each selected corpus block (:mod:`optarena.agents.llm_rewrite`);
answers are appended to ``DIR/rewrites.jsonl`` as they come, with their tokens and time, so a
killed experiment resumes where it stopped. :func:`rewrite_table` scores them with the peephole
study's metrics (BLEU, exact match, syntactic accuracy, IO accuracy; plus cycles saved against
LLVM's oracle), one row per seed and their mean.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from optarena.experiments.runs import RewriteTask
from optarena.records import append_record, read_records

if TYPE_CHECKING:
    from optarena.envs.aarch64_peephole.corpus import BlockPair

REWRITES = "rewrites.jsonl"


def select_blocks(task: RewriteTask) -> list[BlockPair]:
    """The task's blocks: those named, else every corpus block LLVM's pairing changes."""
    from optarena.envs.aarch64_peephole.corpus import load_corpus

    corpus = load_corpus()
    if task.blocks is not None:
        by_id = {b.id: b for b in corpus}
        unknown = [b for b in task.blocks if b not in by_id]
        if unknown:
            raise ValueError(f"unknown blocks {unknown}")
        chosen = [by_id[b] for b in task.blocks]
    else:
        chosen = [b for b in corpus if b.oracle is not None and b.oracle != b.input]
    return chosen[: task.limit]


def run_rewrites(task: RewriteTask, out: Path, console: Console, client: Any = None) -> str | None:
    """Ask for the missing answers; returns why it could not, if it could not. ``client``: an
    :class:`~optarena.llm.client.LLMClient` to use instead of one made from ``task.llm``."""
    from optarena.agents.llm_rewrite import LLMRewriteConfig, LLMRewriter
    from optarena.llm.client import LLMUnavailable

    path = out / REWRITES
    done = {(r["seed"], r["id"]) for r in read_records(path)}
    todo = [(seed, entry) for seed in task.seeds for entry in select_blocks(task)
            if (seed, entry.id) not in done]
    console.print(f"LLM rewrites: {len(done)} answers in {path}, {len(todo)} to ask")
    if not todo:
        return None
    rewriter = LLMRewriter(LLMRewriteConfig(llm=task.llm, mcpu=task.mcpu), client)
    try:
        rewriter.client.connect()
    except LLMUnavailable as err:
        console.print(f"[red]LLM rewrites skipped[/red]: {err}")
        return str(err)
    for seed, entry in todo:
        asm, completion = rewriter.rewrite(entry, seed)
        append_record(path, {
            "seed": seed, "id": entry.id, "asm": asm, "failed": completion is None,
            "prompt_tokens": completion.prompt_tokens if completion else 0,
            "completion_tokens": completion.completion_tokens if completion else 0,
            "seconds": completion.seconds if completion else 0.0,
        })
    return None


def rewrite_table(out: Path, mcpu: str = "neoverse-n1") -> list[str]:
    """Markdown rows of the peephole metrics per seed, and their mean."""
    from optarena.envs.aarch64_peephole.corpus import load_corpus
    from optarena.envs.aarch64_peephole.metrics import score

    records = read_records(out / REWRITES)
    corpus = load_corpus()
    lines = ["| seed | blocks | BLEU | exact match | syntactic acc. | IO acc. | proved equiv. "
             "| cycles saved vs oracle | failed requests | tokens per answer | s per answer |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for seed in sorted({r["seed"] for r in records}):
        mine = [r for r in records if r["seed"] == seed]
        scores = score({r["id"]: r["asm"] for r in mine}, corpus, mcpu=mcpu)
        values = [scores.bleu, *(100 * v for v in (
            scores.exact_match, scores.syntactic_accuracy, scores.io_accuracy,
            scores.proved_equivalent, scores.cycles_saved_vs_oracle))]
        rows.append(values)
        tokens = statistics.mean(r["prompt_tokens"] + r["completion_tokens"] for r in mine)
        seconds = statistics.mean(r["seconds"] for r in mine)
        lines.append(f"| {seed} | {scores.blocks} | {_cells(values)} "
                     f"| {sum(r['failed'] for r in mine)} | {tokens:.0f} | {seconds:.1f} |")
    if len(rows) > 1:
        mean = [statistics.mean(column) for column in zip(*rows, strict=True)]
        lines.append(f"| mean | | {_cells(mean)} | | | |")
    return lines


def _cells(values: list[float]) -> str:
    """BLEU, then percentages."""
    return " | ".join([f"{values[0]:.2f}", *(f"{v:.1f}%" for v in values[1:])])
