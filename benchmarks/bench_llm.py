"""What an LLM-MCTS expansion costs, before and after the cost work, in one run on one server.

Starts ``optarena llm serve``'s server for ``--model`` (llama-cpp-python, 2 threads) with its log
kept, then runs LLM-MCTS twice on the same tensor workload, seed and budget, with no reply cache:

* **before**: the earlier runs' settings (``prompts="v1"``: the node first, one ``id: change``
  line per move, ``reuse=False``, ``proposals=3``): one call per expansion;
* **after**: the defaults (static part first, compact listing, a call's ranked proposals reused
  by the node's next expansions, ``proposals=4``);
* **after, no grammar**: the same, the answer not constrained by a JSON-schema grammar (the
  server samples freely; the answer is parsed as strictly, unusable ones count as fallbacks).

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
PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms")
GENERATION = re.compile(r"\s eval time =\s*([\d.]+) ms / +(\d+) runs")
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "before": ({"prompts": "v1", "listing": "full", "reuse": False, "proposals": 3}, {}),
    "after": ({}, {}),
    "after, no grammar": ({}, {"response_format": "none"}),
}
"""Name -> (LLM-MCTS settings, endpoint settings)."""


def run(variant: tuple[dict[str, Any], dict[str, Any]], base_url: str, model: str,
        workload: str, budget: int, seed: int, log: Path) -> dict[str, float]:
    """One LLM-MCTS run; its usage and the server's prefix reuse during it."""
    start = log.stat().st_size
    env = gym.make("optarena/TensorSchedule-v0", workload=workload, store=None,
                   measure={"number": 1, "repeat": 3, "min_repeat_ms": 10}, info_program=False)
    agent, endpoint = variant
    llm = LLMConfig(base_url=base_url, model=model, cache_dir=None, **endpoint)
    try:
        usage = LLMMCTS(LLMMCTSConfig(llm=llm, **agent)).run(env, budget, seed).usage
    finally:
        env.close()
    with log.open() as handle:
        handle.seek(start)
        text = handle.read()
    hits = [int(n) for n, _ in PREFIX_HIT.findall(text)]
    reading = sum(float(ms) for ms in PROMPT_EVAL.findall(text)) / 1e3
    generated = GENERATION.findall(text)
    writing = sum(float(ms) for ms, _ in generated) / 1e3
    calls = max(usage.llm_calls, 1)
    expansions = max(usage.proposals, 1)
    reused = sum(hits)
    return {"expansions": usage.proposals, "calls": usage.llm_calls,
            "fallbacks": usage.fallbacks, "s_per_expansion": usage.llm_seconds / expansions,
            "s_per_call": usage.llm_seconds / calls,
            "read_s_per_call": reading / calls, "write_s_per_call": writing / calls,
            "written_per_call": sum(int(n) for _, n in generated) / calls,
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
            ("  reading the prompt (server)", "read_s_per_call", "{:.2f}"),
            ("  writing the answer (server)", "write_s_per_call", "{:.2f}"),
            ("answer tokens / call (server)", "written_per_call", "{:.0f}"),
            ("prompt tokens / call", "prompt_per_call", "{:.0f}"),
            ("tokens reused / call (server)", "reused_per_call", "{:.0f}"),
            ("tokens read / call (server)", "read_per_call", "{:.0f}"),
            ("tokens read / expansion", "read_per_expansion", "{:.0f}")]
    for column in ("", *VARIANTS, *(f"{name} / before" for name in list(VARIANTS)[1:])):
        table.add_column(column)
    for label, key, fmt in rows:
        before = results["before"][key]
        table.add_row(label, *(fmt.format(results[name][key]) for name in VARIANTS),
                      *(f"{results[name][key] / before:.2f}x" if before else "—"
                        for name in list(VARIANTS)[1:]))
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
