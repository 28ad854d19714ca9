"""The peephole study's metrics for predicted blocks (Fang & Mukhanov, 2024).

* **BLEU** against the oracle (sacrebleu, corpus level, on assembly tokens: mnemonics, registers,
  immediates and punctuation separated);
* **exact match** (EMR): identical to the oracle after normalizing whitespace, case and comments;
* **syntactic accuracy**: the prediction assembles with ``llvm-mc``;
* **IO accuracy**: the prediction is equivalent to the *input* block (equivalence checker: the
  random states, then the prover; a prediction the prover refutes is not IO-correct);
* **proved equivalent**: of all predictions, the share the prover proves equivalent for every
  initial state (:mod:`~optarena.envs.aarch64_peephole.prove`); the IO-correct rest were only
  tested (an instruction the prover does not cover, or its time limit);
* **cycles saved** by IO-correct predictions, as a share of the oracle's saving (llvm-mca).

Failures are counted by the checker's classes (``assemble``, ``register``, ``memory``, ``flags``,
``crash``), and ``empty`` for a prediction with no instruction (no answer).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace

from optarena.envs.aarch64_peephole.block import format_block, parse_block
from optarena.envs.aarch64_peephole.check import EquivalenceChecker
from optarena.envs.aarch64_peephole.corpus import BlockPair
from optarena.envs.aarch64_peephole.prove import DEFAULT_TIME_LIMIT
from optarena.envs.aarch64_peephole.toolchain import Toolchain


def normalize(asm: str) -> str:
    """One instruction per line, single spaces, lower case, no comments or directives."""
    lines = []
    for inst in parse_block(asm):
        text = re.sub(r"\s*,\s*", ", ", " ".join(str(inst).lower().split()))
        lines.append(re.sub(r"\s+\]", "]", re.sub(r"\[\s+", "[", text)))
    return "\n".join(lines)


def tokens(asm: str) -> str:
    return " ".join(re.findall(r"[\w#.:-]+|[\[\]!,]", normalize(asm)))


@dataclass
class Scores:
    blocks: int = 0
    bleu: float = 0.0
    exact_match: float = 0.0
    syntactic_accuracy: float = 0.0
    io_accuracy: float = 0.0
    proved_equivalent: float = 0.0
    """Predictions the prover proves equivalent to the input, of all (0 without the prover)."""
    cycles_saved_vs_oracle: float = 0.0
    """Cycles saved by IO-correct predictions / cycles saved by the oracle (all blocks)."""
    failures: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    """Predictions whose block id is not in the corpus (ignored)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_markdown(self, title: str = "predictions") -> str:
        rows = [
            ("blocks", f"{self.blocks}"),
            ("BLEU", f"{self.bleu:.2f}"),
            ("exact match", f"{100 * self.exact_match:.1f}%"),
            ("syntactic accuracy", f"{100 * self.syntactic_accuracy:.1f}%"),
            ("IO accuracy", f"{100 * self.io_accuracy:.1f}%"),
            ("proved equivalent", f"{100 * self.proved_equivalent:.1f}%"),
            ("cycles saved vs oracle", f"{100 * self.cycles_saved_vs_oracle:.1f}%"),
        ] + [(f"failures: {kind}", f"{count}") for kind, count in sorted(self.failures.items())]
        lines = [f"### {title}", "", "| metric | value |", "|---|---|"]
        return "\n".join(lines + [f"| {name} | {value} |" for name, value in rows]) + "\n"


def score(predictions: dict[str, str], corpus: list[BlockPair], *,
          checker: EquivalenceChecker | None = None, toolchain: Toolchain | None = None,
          mcpu: str = "neoverse-n1", iterations: int = 100) -> Scores:
    """Score ``block id -> predicted asm`` against the corpus entries that have an oracle.
    Syntactic accuracy is llvm-mc's verdict, whatever assembler ``toolchain`` names. The default
    checker proves (at the environment's default time limit); one given without a prover gives
    no proofs (``proved_equivalent`` 0)."""
    import sacrebleu

    toolchain = replace(toolchain or Toolchain(), assembler="llvm-mc")
    checker = checker or EquivalenceChecker(toolchain, proof_time_limit=DEFAULT_TIME_LIMIT)
    by_id = {b.id: b for b in corpus if b.oracle is not None}
    scored = [(by_id[i], p) for i, p in predictions.items() if i in by_id]
    out = Scores(blocks=len(scored), missing=len(predictions) - len(scored))
    if not scored:
        return out
    failures: Counter[str] = Counter()
    exact = syntactic = correct = proved = 0
    saved = oracle_saved = 0
    for entry, predicted in scored:
        oracle = entry.oracle or ""
        exact += normalize(predicted) == normalize(oracle)
        start = toolchain.cycles(entry.input, mcpu, iterations)
        oracle_saved += start - toolchain.cycles(oracle, mcpu, iterations)
        block = parse_block(predicted)
        if not block:  # no answer (e.g. a failed request) is not a block: wrong on every count
            failures["empty"] += 1
            continue
        result = checker.check(entry.input, format_block(block))
        if result.equivalent:
            syntactic += 1
            correct += 1
            proved += result.verdict == "proved"
            saved += start - toolchain.cycles(predicted, mcpu, iterations)
            continue
        assert result.failure is not None
        failures[result.failure.kind] += 1
        syntactic += result.failure.kind != "assemble"
    bleu = sacrebleu.corpus_bleu([tokens(p) for _, p in scored],
                                 [[tokens(e.oracle or "") for e, _ in scored]], tokenize="none")
    n = len(scored)
    out.bleu = bleu.score
    out.exact_match, out.syntactic_accuracy, out.io_accuracy = exact / n, syntactic / n, correct / n
    out.proved_equivalent = proved / n
    out.cycles_saved_vs_oracle = saved / oracle_saved if oracle_saved else 0.0
    out.failures = dict(failures)
    return out


def read_predictions(path: str) -> dict[str, str]:
    """JSONL lines ``{"id": BLOCK_ID, "asm": PREDICTED}``."""
    out = {}
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if "id" not in record or "asm" not in record:
                raise ValueError(f"{path}:{number}: a prediction needs 'id' and 'asm'")
            out[record["id"]] = record["asm"]
    return out
