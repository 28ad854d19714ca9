"""What an LLM-MCTS expansion costs, before and after the cost work, in one run on one server.

Starts ``optarena llm serve``'s server for ``--model`` (llama-cpp-python, 2 threads) with its log
kept, then runs LLM-MCTS twice on the same tensor workload, seed and budget, with no reply cache:

* **before**: the earlier runs' settings (``prompts="v1"``: the node first, one ``id: change``
  line per move, ``reuse=False``, ``proposals=3``): one call per expansion;
* **after**: the defaults (static part first, compact listing, a call's ranked proposals reused
  by the node's next expansions, ``proposals=4``).

For each: expansions proposed by the LLM, calls, LLM seconds per expansion, prompt tokens per
call, and from the server's own log (``Llama.generate: N prefix-match hit``) the tokens it reused
from its KV cache and the tokens it read; then the ratios. Timing figures need a quiet machine.

    python benchmarks/bench_llm.py [--workload matmul-128] [--budget 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console
from rich.table import Table

import optarena.envs  # noqa: F401 - registers the environments
from optarena.agents.llm_mcts import LLMMCTS, LLMMCTSConfig
from optarena.envs.host import cpu_model
from optarena.llm.client import LLMConfig
from optarena.llm.server import LocalServer, free_port

PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit, remaining (\d+) prompt tokens")
VARIANTS: dict[str, dict[str, Any]] = {
    "before": {"prompts": "v1", "listing": "full", "reuse": False, "proposals": 3},
    "after": {},
}


def run(variant: dict[str, Any], base_url: str, model: str, workload: str, budget: int,
        seed: int, log: Path) -> dict[str, float]:
    """One LLM-MCTS run; its usage and the server's prefix reuse during it."""
    start = log.stat().st_size
    env = gym.make("optarena/TensorSchedule-v0", workload=workload, store=None,
                   measure={"number": 1, "repeat": 3, "min_repeat_ms": 10}, info_program=False)
    llm = LLMConfig(base_url=base_url, model=model, cache_dir=None)
    try:
        usage = LLMMCTS(LLMMCTSConfig(llm=llm, **variant)).run(env, budget, seed).usage
    finally:
        env.close()
    with log.open() as handle:
        handle.seek(start)
        hits = [int(n) for n, _ in PREFIX_HIT.findall(handle.read())]
    calls = max(usage.llm_calls, 1)
    expansions = max(usage.proposals, 1)
    reused = sum(hits)
    return {"expansions": usage.proposals, "calls": usage.llm_calls,
            "fallbacks": usage.fallbacks, "s_per_expansion": usage.llm_seconds / expansions,
            "s_per_call": usage.llm_seconds / calls,
            "prompt_per_call": usage.prompt_tokens / calls, "reused_per_call": reused / calls,
            "read_per_call": (usage.prompt_tokens - reused) / calls,
            "read_per_expansion": (usage.prompt_tokens - reused) / expansions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--workload", default="matmul-128")
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "server.log"
        log.touch()
        with LocalServer(args.model, port=free_port(), log=log) as server:
            results = {name: run(variant, server.base_url, args.model, args.workload,
                                 args.budget, args.seed, log)
                       for name, variant in VARIANTS.items()}
    table = Table(title=f"LLM-MCTS on {args.workload}, budget {args.budget}, seed {args.seed}, "
                  f"{args.model} (2 threads); {cpu_model()}")
    rows = [("expansions (LLM-proposed)", "expansions", "{:.0f}"), ("calls", "calls", "{:.0f}"),
            ("fallbacks", "fallbacks", "{:.0f}"), ("LLM s / expansion", "s_per_expansion", "{:.2f}"),
            ("LLM s / call", "s_per_call", "{:.2f}"),
            ("prompt tokens / call", "prompt_per_call", "{:.0f}"),
            ("tokens reused / call (server)", "reused_per_call", "{:.0f}"),
            ("tokens read / call (server)", "read_per_call", "{:.0f}"),
            ("tokens read / expansion", "read_per_expansion", "{:.0f}")]
    for column in ("", *VARIANTS, "after / before"):
        table.add_column(column)
    for label, key, fmt in rows:
        before, after = results["before"][key], results["after"][key]
        ratio = f"{after / before:.2f}x" if before else "—"
        table.add_row(label, fmt.format(before), fmt.format(after), ratio)
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
