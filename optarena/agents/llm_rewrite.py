"""LLM free-form rewrites of AArch64 blocks: the setting of Fang & Mukhanov (2024).

The model gets a whole basic block and is asked to apply the load/store pairing peephole
(``llm/prompts/aarch64_rewrite.txt``); its answer, a rewritten block, is the prediction. Nothing is
checked or repaired here: the peephole metrics (:func:`optarena.envs.aarch64_peephole.metrics.score`:
BLEU, exact match, syntactic and IO accuracy) judge the answers, so syntax, register and offset
errors count against the model. A request that fails is an empty prediction (it does not
assemble) and a fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from optarena.envs.aarch64_peephole.corpus import BlockPair
from optarena.llm.client import Completion, LLMClient, LLMConfig, LLMRequestFailed

_FENCE = re.compile(r"```[\w-]*\n(.*?)(?:```|$)", re.S)


def _rewrite_llm() -> LLMConfig:
    return LLMConfig(max_tokens=384, temperature=0.2)


@dataclass
class LLMRewriteConfig:
    llm: LLMConfig | dict[str, Any] = field(default_factory=_rewrite_llm)
    """The endpoint; answers are whole blocks, so ``max_tokens`` is larger than for proposals."""
    mcpu: str = "neoverse-n1"
    """The CPU named in the prompt (and scored by llvm-mca)."""
    prompt_dir: str | None = None
    """A folder with ``rewrite_system.txt`` and ``aarch64_rewrite.txt`` replacing the shipped ones."""

    def __post_init__(self) -> None:
        if isinstance(self.llm, dict):
            self.llm = LLMConfig(**{"max_tokens": 384, "temperature": 0.2, **self.llm})


def extract_block(text: str) -> str:
    """The assembly of an answer: the first fenced code block if there is one, else the text."""
    fenced = _FENCE.search(text)
    return (fenced.group(1) if fenced else text).strip() + "\n"


class LLMRewriter:
    """Asks an LLM for the paired version of each block."""

    def __init__(self, config: LLMRewriteConfig | None = None,
                 client: LLMClient | None = None) -> None:
        self.config = config or LLMRewriteConfig()
        assert isinstance(self.config.llm, LLMConfig)
        self.client = client or LLMClient(self.config.llm)
        folder = (Path(self.config.prompt_dir) if self.config.prompt_dir
                  else resources.files("optarena.llm") / "prompts")
        self.system = (folder / "rewrite_system.txt").read_text()  # type: ignore[operator]
        self.template = Template((folder / "aarch64_rewrite.txt").read_text())  # type: ignore[operator]

    def rewrite(self, entry: BlockPair, seed: int) -> tuple[str, Completion | None]:
        """The predicted block for ``entry`` and the completion behind it (``""`` and ``None``
        when the request failed)."""
        prompt = self.template.substitute(target=f"AArch64 ({self.config.mcpu})", block=entry.input)
        try:
            completion = self.client.complete(
                [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}],
                schema=None, seed=seed)
        except LLMRequestFailed:
            return "", None
        return extract_block(completion.text), completion
