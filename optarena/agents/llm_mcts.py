"""LLM-proposal MCTS, after the Reasoning Compiler (Tang et al., NeurIPS 2025).

The search is :class:`~optarena.agents.mcts.MCTS` (UCT, rollouts, measured rewards
backpropagated); only the choice of the action that expands a node differs. Each expansion asks
the LLM, with a prompt built from the environment's template file
(``optarena/llm/prompts/<family>.txt``) giving

* the current program: the decision summary (``program="summary"``, compact) or the whole
  TVMScript (``"full"``); for the peephole environment, the block's assembly;
* the path of grandparent, parent and current node with their measured scores and the actions
  between them, and the target hardware;
* the actions already tried from the node, and up to ``max_actions_listed`` untried legal actions
  with their ids (a seeded random subset when there are more).

The answer is parsed strictly: a JSON object ``{"actions": [id, ...]}`` (requested with a JSON
schema when the endpoint supports it; the schema lists the offered ids when ``constrain_ids``),
else the first bracketed list of integers in the text. The first proposed id that is an untried
legal action is expanded. An answer with none, an unparseable answer or a failed request falls
back to a uniform untried action and is counted in ``usage.fallbacks``; calls, tokens, cost and
LLM seconds are counted too. Replies are cached on disk by request hash (see
:mod:`optarena.llm.client`), so a run replays without the endpoint.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from optarena.agents.base import Usage
from optarena.agents.mcts import MCTS, MCTSConfig, Node
from optarena.envs.contract import game
from optarena.llm.client import LLMClient, LLMConfig, LLMRequestFailed

_BRACKETED = re.compile(r"\[\s*-?\d+(?:\s*,\s*-?\d+)*\s*\]")
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass
class LLMMCTSConfig(MCTSConfig):
    llm: LLMConfig | dict[str, Any] = field(default_factory=LLMConfig)
    """The endpoint (:class:`~optarena.llm.client.LLMConfig`; a YAML mapping is accepted)."""
    proposals: int = 3
    """Action ids asked for per expansion, best first."""
    program: Literal["summary", "full"] = "summary"
    """How the current program is shown: decision summary or the whole TVMScript."""
    max_actions_listed: int = 32
    """Untried legal actions listed in a prompt at most."""
    constrain_ids: bool = True
    """Put the offered ids in the JSON schema (servers with grammars then only answer those)."""
    prompt_dir: str | None = None
    """A folder with ``system.txt`` and ``<family>.txt`` templates replacing the shipped ones."""

    def __post_init__(self) -> None:
        if isinstance(self.llm, dict):
            self.llm = LLMConfig(**self.llm)


def parse_proposal(text: str, legal: set[int]) -> list[int]:
    """The legal action ids an answer proposes, in its order (empty when it proposes none)."""
    ids: list[Any] | None = None
    match = _OBJECT.search(text)
    if match:
        try:
            answer = json.loads(match.group(0))
        except json.JSONDecodeError:
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get("actions"), list):
            ids = answer["actions"]
    if ids is None:
        bracketed = _BRACKETED.search(text)
        ids = json.loads(bracketed.group(0)) if bracketed else []
    proposed = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
    return [i for i in dict.fromkeys(proposed) if i in legal]


class LLMMCTS(MCTS):
    """MCTS whose expansions are proposed by an LLM through an OpenAI-compatible endpoint."""

    name = "llm-mcts"
    config: LLMMCTSConfig

    def __init__(self, config: LLMMCTSConfig | None = None, client: LLMClient | None = None) -> None:
        """``client``: an already connected client (e.g. shared by runs); default: one made from
        ``config.llm`` and connected when a search starts."""
        super().__init__(config or LLMMCTSConfig())
        self.client = client
        self.templates: dict[str, Template] = {}
        self.seed = 0

    def prepare(self, env: gym.Env, seed: int) -> None:
        """Connect (fail fast if the endpoint is unusable) and load the prompt templates."""
        self.seed = seed
        assert isinstance(self.config.llm, LLMConfig)
        if self.client is None:
            client = LLMClient(self.config.llm)
            client.connect()
            self.client = client
        family = game(env).prompt_family
        folder = (Path(self.config.prompt_dir) if self.config.prompt_dir
                  else resources.files("optarena.llm") / "prompts")
        self.templates = {name: Template((folder / f"{name}.txt").read_text())  # type: ignore[operator]
                          for name in ("system", family)}

    def propose(self, env: gym.Env, node: Node, rng: np.random.Generator, usage: Usage) -> int:
        assert self.client is not None
        usage.proposals += 1
        listed = node.untried
        if len(listed) > self.config.max_actions_listed:
            listed = rng.choice(listed, self.config.max_actions_listed, replace=False).tolist()
        messages = self.messages(env, node, sorted(listed))
        schema = {
            "type": "object",
            "properties": {"actions": {
                "type": "array", "minItems": 1, "maxItems": self.config.proposals,
                "items": {"type": "integer", **({"enum": sorted(listed)}
                                                if self.config.constrain_ids else {})},
            }},
            "required": ["actions"],
            "additionalProperties": False,
        }
        try:
            completion = self.client.complete(messages, schema, seed=self.seed)
        except LLMRequestFailed:
            usage.fallbacks += 1
            return super().propose(env, node, rng, usage)
        usage.add_completion(completion, self.client.cost_usd(completion))
        proposed = parse_proposal(completion.text, set(node.untried))
        if not proposed:
            usage.fallbacks += 1
            return super().propose(env, node, rng, usage)
        return proposed[0]

    def messages(self, env: gym.Env, node: Node, listed: list[int]) -> list[dict[str, str]]:
        """The chat messages asking which of ``listed`` to apply to ``node``."""
        inner = game(env)
        texts = {d["id"]: d["text"] for d in inner.describe_actions(node.state)}
        chain = [node]
        while len(chain) < 3 and chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        path = []
        for role, member in zip(("current", "parent", "grandparent"), chain, strict=False):
            step = ""
            if member.parent is not None:
                parent_texts = {d["id"]: d["text"]
                                for d in inner.describe_actions(member.parent.state)}
                step = f"after {parent_texts.get(member.action, f'action {member.action}')}: "
            path.append(f"{role}: {step}{inner.format_score(member.score)}")
        tried = [texts.get(c.action, str(c.action)) for c in node.children]
        prompt = self.templates[inner.prompt_family].substitute(
            target=inner.target_text(),
            program_kind="TVMScript" if self.config.program == "full" else "decisions",
            program=inner.program_text(node.state, full=self.config.program == "full"),
            path="\n".join(reversed(path)),
            tried="; ".join(tried) if tried else "nothing",
            actions="\n".join(f"{i}: {texts.get(i, f'action {i}')}" for i in listed),
            k=self.config.proposals,
        )
        return [{"role": "system", "content": self.templates["system"].substitute()},
                {"role": "user", "content": prompt}]
