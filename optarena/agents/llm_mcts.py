"""LLM-proposal MCTS, after the Reasoning Compiler (Tang et al., NeurIPS 2025).

:class:`LLMMCTS` (the agent ``llm-mcts``) is the paper's search as its published code runs it:
UCT inside the planning loop of :mod:`~optarena.agents.planning` (expansions and rollouts scored
by the cost model, the best unmeasured states measured as one batch per round), where the LLM
proposes the expansions of the planning tree. At most ``llm_calls_per_round`` new calls are made
per round (per measured batch); the round's other expansions take the proposals queued from
earlier calls, then uniform untried actions (``usage.proposals_uniform``). Its prompt shows the
path's scores marked measured or predicted. It needs an environment with a cost model.

:class:`MeasuredLLMMCTS` (the agent ``llm-mcts-measured``) is
:class:`~optarena.agents.mcts.MeasuredMCTS` (every node measured) with the same proposals: the
committed races before the planning loop ran it under the name ``llm-mcts``.

Only the choice of the action that expands a node differs from the plain searches
(:class:`LLMProposer`). The LLM is asked with a prompt built from the environment's template
file (``optarena/llm/prompts/<family>.txt``):

* **static first**: the system message, the task, the target and what to answer come first and
  are the same in every call of a run, so a server that keeps the last prompt's KV cache
  (llama.cpp) reads only the rest; then the node: the search path (the last ``path_depth``
  nodes with their measured scores and the moves between them), the current program (the
  decision summary, ``program="summary"``, or the whole TVMScript, ``"full"``; for the peephole
  environment the block), the moves already tried from it, and up to ``max_actions_listed``
  untried legal moves with their ids (a seeded random subset when there are more);
* **a compact listing** (``listing="compact"``): moves written ``WHAT: FROM -> TO`` are grouped
  by ``WHAT``, as ``WHAT: id=TO id=TO ...`` (the current value is in the program above);
  ``listing="full"`` writes one ``id: text`` line per move.

**One call serves several expansions** (``reuse``): the answer's ranked ids are queued on the
node, and its next expansions take them in order while they are untried and legal; the LLM is
asked again when the queue is used up, or when the node has gained ``requery_visits`` visits
since it was asked (its statistics changed enough), if set.

**Sequences** (``answer="sequence"``, the paper's prompting): the prompt shows the whole path
with its measured scores and asks for a short rationale, then a *sequence* of moves applied one
after another (each id as numbered in the state the previous moves lead to). The sequence is
checked with the environment's pure transitions before anything is measured: a step that is
not legal rejects the whole sequence (counted as a fallback). A legal sequence expands the node
with one child, the state at its end (the edge's moves are the sequence).

The answer is parsed strictly: a JSON object ``{"actions": [id, ...]}`` (``{"rationale": ...,
"sequence": [...]}``), requested with a JSON schema when the endpoint supports it (the schema
lists the offered ids when ``constrain_ids``), else the first bracketed list of integers in the
text. An answer with no usable id, an unparseable answer or a failed request falls back to a
uniform untried action and is counted in ``usage.fallbacks``; calls, tokens, cost, LLM seconds
and reused proposals are counted too. Replies are cached on disk by request hash (see
:mod:`optarena.llm.client`), so a run replays without the endpoint. ``prompts="v1"`` gives the
templates and defaults of the earlier runs (node first, full listing, no reuse) to reproduce
them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np

from optarena.agents.base import Usage
from optarena.agents.mcts import MeasuredMCTS, MeasuredMCTSConfig, MeasuredNode
from optarena.agents.planning import Planner, PlanningConfig, PlanNode, walk
from optarena.envs.contract import game, oracle
from optarena.llm.client import LLMClient, LLMConfig, LLMRequestFailed

_BRACKETED = re.compile(r"\[\s*-?\d+(?:\s*,\s*-?\d+)*\s*\]")
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_CHANGE = re.compile(r"^(?P<what>.+?): (?P<before>.+?) -> (?P<after>.+)$")
REQUESTS = {
    "actions": "Choose {up_to}{k} of the legal moves listed below that are most likely to improve "
               "it, best first. Answer with JSON only: {{\"actions\": [id, ...]}}",
    "sequence": "Study the search path, then propose a sequence of up to {k} moves to apply one "
                "after another, each id as numbered in the state the previous moves lead to. "
                "Answer with JSON only: {{\"rationale\": \"<one sentence>\", \"sequence\": "
                "[id, ...]}}",
}
"""What the prompt asks for, by :attr:`LLMMCTSConfig.answer`."""


@dataclass
class LLMProposalConfig:
    """How the LLM is asked for expansions (both ``llm-mcts`` and ``llm-mcts-measured``)."""

    llm: LLMConfig | dict[str, Any] = field(default_factory=LLMConfig)
    """The endpoint (:class:`~optarena.llm.client.LLMConfig`; a YAML mapping is accepted)."""
    proposals: int = 4
    """Action ids asked for per call, best first (the length of a sequence). With ``reuse`` an
    answer must rank this many (or every listed move, if fewer): each serves an expansion."""
    reuse: bool = True
    """Queue a call's ranked ids on the node for its next expansions."""
    requery_visits: int | None = None
    """Ask again once the node has this many more visits than when it was asked (None: only
    when its queue is used up)."""
    answer: Literal["actions", "sequence"] = "actions"
    """Ranked alternative moves, or the paper's rationale and sequence of moves."""
    path_depth: int | None = 3
    """Nodes of the search path shown, the current one included (None: the whole path)."""
    listing: Literal["compact", "full"] = "compact"
    """How the legal moves are listed (see the module docstring)."""
    program: Literal["summary", "full"] = "summary"
    """How the current program is shown: decision summary or the whole TVMScript."""
    max_actions_listed: int = 32
    """Untried legal actions listed in a prompt at most."""
    constrain_ids: bool = True
    """Put the offered ids in the JSON schema (servers with grammars then only answer those)."""
    prompts: Literal["v2", "v1"] = "v2"
    """The shipped templates: ``v2`` static first; ``v1`` the earlier runs' (node first; with
    ``listing="full"``, ``reuse=False`` and ``proposals=3`` they are reproduced)."""
    prompt_dir: str | None = None
    """A folder with ``system.txt`` and ``<family>.txt`` templates replacing the shipped ones."""

    def __post_init__(self) -> None:
        if isinstance(self.llm, dict):
            self.llm = LLMConfig(**self.llm)


@dataclass
class MeasuredLLMMCTSConfig(MeasuredMCTSConfig, LLMProposalConfig):
    """``llm-mcts-measured``: :class:`~optarena.agents.mcts.MeasuredMCTSConfig` and the
    proposals' settings."""


@dataclass
class LLMMCTSConfig(PlanningConfig, LLMProposalConfig):
    """``llm-mcts``: the planning loop's settings and the proposals'."""

    llm_calls_per_round: int = 4
    """New LLM calls per round (per measured batch) at most; queued proposals are free."""


class Expandable(Protocol):
    """What the proposer reads of a tree node (both trees' nodes have it)."""

    state: Any
    action: int | None
    untried: list[int]
    visits: int

    @property
    def parent(self) -> Any: ...

    @property
    def children(self) -> Any: ...

    @property
    def score(self) -> float: ...


@dataclass
class _Queued:
    """A node's proposals not used yet, and the node's visits when the LLM was asked."""

    moves: list[list[int]]
    visits: int


def parse_proposal(text: str, legal: set[int] | None = None, key: str = "actions") -> list[int]:
    """The action ids an answer proposes under ``key``, in its order: only those in ``legal``
    (when given), without repeats (an empty list when it proposes none)."""
    ids: list[Any] | None = None
    match = _OBJECT.search(text)
    if match:
        try:
            answer = json.loads(match.group(0))
        except json.JSONDecodeError:
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get(key), list):
            ids = answer[key]
    if ids is None:
        bracketed = _BRACKETED.search(text)
        ids = json.loads(bracketed.group(0)) if bracketed else []
    proposed = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
    if legal is None:
        return proposed
    return [i for i in dict.fromkeys(proposed) if i in legal]


def action_listing(texts: dict[int, str], ids: list[int], compact: bool) -> str:
    """The legal moves ``ids`` for a prompt: ``id: text`` lines, or (``compact``) the moves
    written ``WHAT: FROM -> TO`` grouped as ``WHAT: id=TO id=TO`` (list spaces dropped), the
    others as ``id: text``."""
    if not compact:
        return "\n".join(f"{i}: {texts.get(i, f'action {i}')}" for i in ids)
    groups: dict[str, list[str]] = {}
    for i in ids:
        text = texts.get(i, f"action {i}")
        change = _CHANGE.match(text)
        if change is None:
            groups[f"{i}: {text}"] = []
        else:
            groups.setdefault(change["what"], []).append(f"{i}={change['after'].replace(', ', ',')}")
    return "\n".join(f"{head}: {' '.join(entries)}" if entries else head
                     for head, entries in groups.items())


class LLMProposer:
    """Asks the LLM which untried moves expand a node (the module docstring): the calls, the
    queue of ranked proposals and the prompts."""

    def __init__(self, config: LLMProposalConfig, client: LLMClient | None = None) -> None:
        self.config = config
        self.client = client
        self.templates: dict[str, Template] = {}
        self.seed = 0
        self.queued: dict[Any, _Queued] = {}

    def prepare(self, env: gym.Env, seed: int) -> None:
        """Connect (fail fast if the endpoint is unusable) and load the prompt templates."""
        self.seed = seed
        self.queued = {}
        assert isinstance(self.config.llm, LLMConfig)
        if self.client is None:
            client = LLMClient(self.config.llm)
            client.connect()
            self.client = client
        family = game(env).prompt_family
        shipped = resources.files("optarena.llm") / "prompts"
        folder = (Path(self.config.prompt_dir) if self.config.prompt_dir
                  else shipped / "v1" if self.config.prompts == "v1" else shipped)
        self.templates = {name: Template((folder / f"{name}.txt").read_text())  # type: ignore[operator]
                          for name in ("system", family)}

    def queued_moves(self, node: Expandable, usage: Usage) -> list[int] | None:
        """The next of ``node``'s queued proposals that is still untried (``None``: none left,
        or the node is due to be asked again)."""
        queued = self.queued.get(node)
        requery = self.config.requery_visits
        if queued is not None and (requery is None or node.visits - queued.visits < requery):
            while queued.moves:
                moves = queued.moves.pop(0)
                if moves[0] in node.untried:
                    usage.proposals += 1
                    usage.proposals_reused += 1
                    return moves
        return None

    def propose_moves(self, env: gym.Env, node: Expandable, rng: np.random.Generator,
                      usage: Usage, score_text: Callable[[Expandable], str]) -> list[int]:
        """The moves of ``node``'s next expansion: an untried action (with ``answer="sequence"``,
        possibly followed by more moves), from the node's queue or a new call, else uniform."""
        queued = self.queued_moves(node, usage)
        if queued is not None:
            return queued
        usage.proposals += 1
        proposed = self._ask(env, node, rng, usage, score_text)
        if not proposed:
            usage.fallbacks += 1
            return [int(rng.choice(node.untried))]
        if self.config.reuse:
            self.queued[node] = _Queued(proposed[1:], node.visits)
        return proposed[0]

    def fewest(self, listed: list[int]) -> int:
        """The proposals an answer must have: with ``reuse``, a full ranking (each proposal
        serves an expansion, so fewer mean more calls), else one."""
        if self.config.reuse and self.config.answer == "actions":
            return max(min(self.config.proposals, len(listed)), 1)
        return 1

    def _ask(self, env: gym.Env, node: Expandable, rng: np.random.Generator, usage: Usage,
             score_text: Callable[[Expandable], str]) -> list[list[int]]:
        """The LLM's proposals for ``node``: ranked single moves, or one legal sequence (empty:
        nothing usable)."""
        assert self.client is not None
        sequence = self.config.answer == "sequence"
        listed = node.untried
        if len(listed) > self.config.max_actions_listed:
            listed = rng.choice(listed, self.config.max_actions_listed, replace=False).tolist()
        listed = sorted(listed)
        key = "sequence" if sequence else "actions"
        ids: dict[str, Any] = {"type": "integer"}
        if self.config.constrain_ids and not sequence:
            ids["enum"] = listed
        properties: dict[str, Any] = {key: {"type": "array", "minItems": self.fewest(listed),
                                            "maxItems": self.config.proposals, "items": ids}}
        if sequence:
            properties = {"rationale": {"type": "string"}, **properties}
        schema = {"type": "object", "properties": properties, "required": list(properties),
                  "additionalProperties": False}
        try:
            completion = self.client.complete(self.messages(env, node, listed, score_text),
                                              schema, seed=self.seed)
        except LLMRequestFailed:
            return []
        usage.add_completion(completion, self.client.cost_usd(completion))
        if not sequence:
            return [[i] for i in parse_proposal(completion.text, set(node.untried))]
        moves = parse_proposal(completion.text, key="sequence")
        legal = bool(moves) and moves[0] in node.untried and \
            not isinstance(walk(oracle(env), node.state, moves), str)
        return [moves] if legal else []

    def messages(self, env: gym.Env, node: Expandable, listed: list[int],
                 score_text: Callable[[Expandable], str]) -> list[dict[str, str]]:
        """The chat messages asking which of ``listed`` to apply to ``node``: the static part
        (system message, task, target, what to answer) first, then the node (the path's scores
        written by ``score_text``)."""
        config, inner = self.config, game(env)
        texts = {d["id"]: d["text"] for d in inner.describe_actions(node.state)}
        chain = [node]
        while chain[-1].parent is not None and (config.path_depth is None
                                                or len(chain) < config.path_depth):
            chain.append(chain[-1].parent)
        names = ["current", "parent", "grandparent"]
        path = []
        for depth, member in enumerate(chain):
            step = ""
            if member.parent is not None:
                parent_texts = {d["id"]: d["text"]
                                for d in inner.describe_actions(member.parent.state)}
                step = f"after {parent_texts.get(member.action, f'action {member.action}')}: "
            role = names[depth] if depth < len(names) else f"ancestor {depth}"
            path.append(f"{role}: {step}{score_text(member)}")
        tried = [texts.get(c.action, str(c.action)) for c in node.children]
        compact = config.listing == "compact"
        prompt = self.templates[inner.prompt_family].substitute(
            target=inner.target_text(),
            request=REQUESTS[config.answer].format(
                k=config.proposals, up_to="" if self.fewest(listed) > 1 else "up to "),
            program_kind="TVMScript" if config.program == "full" else "decisions",
            program=inner.program_text(node.state, full=config.program == "full"),
            path="\n".join(reversed(path)),
            tried="; ".join(tried) if tried else "nothing",
            listing="id: change, or what: id=new value ... for changes of one thing" if compact
            else "id: change",
            actions=action_listing(texts, listed, compact),
            k=config.proposals,
        )
        return [{"role": "system", "content": self.templates["system"].substitute()},
                {"role": "user", "content": prompt}]


class LLMMCTS(Planner):
    """Model-based UCT whose expansions an LLM proposes through an OpenAI-compatible endpoint
    (``llm-mcts``)."""

    name = "llm-mcts"
    config: LLMMCTSConfig

    def __init__(self, config: LLMMCTSConfig | None = None, client: LLMClient | None = None) -> None:
        """``client``: an already connected client (e.g. shared by runs); default: one made from
        ``config.llm`` and connected when a search starts."""
        super().__init__(config or LLMMCTSConfig())
        self.proposer = LLMProposer(self.config, client)
        self.calls_at_round = 0

    def prepare(self, env: gym.Env, seed: int) -> None:
        self.proposer.prepare(env, seed)

    def plan(self) -> None:
        self.calls_at_round = self.usage.llm_calls
        super().plan()

    def propose(self, node: PlanNode) -> list[int] | None:
        """The node's queued proposal, else a new call while the round has calls left (its
        legal actions enumerated for the prompt), else a uniform untried action."""
        assert self.env is not None
        if self.usage.llm_calls - self.calls_at_round < self.config.llm_calls_per_round:
            if not self.enumerate_legal(node):  # the prompt lists them
                return None
            began = time.perf_counter()
            try:
                return self.proposer.propose_moves(self.env, node, self.rng, self.usage,
                                                   self.score_text)
            finally:
                self.waiting_s += time.perf_counter() - began
        queued = self.proposer.queued_moves(node, self.usage)
        if queued is not None:
            return queued
        moves = super().propose(node)
        self.usage.proposals_uniform += moves is not None
        return moves

    def score_text(self, node: Expandable) -> str:
        assert self.env is not None and isinstance(node, PlanNode)
        how = "measured" if node.measured is not None else "predicted by the cost model"
        return f"{game(self.env).format_score(node.score)} ({how})"


class MeasuredLLMMCTS(MeasuredMCTS):
    """MCTS measuring every node, whose expansions an LLM proposes (``llm-mcts-measured``)."""

    name = "llm-mcts-measured"
    config: MeasuredLLMMCTSConfig

    def __init__(self, config: MeasuredLLMMCTSConfig | None = None,
                 client: LLMClient | None = None) -> None:
        """``client``: as :class:`LLMMCTS`'s."""
        super().__init__(config or MeasuredLLMMCTSConfig())
        self.proposer = LLMProposer(self.config, client)

    def prepare(self, env: gym.Env, seed: int) -> None:
        self.proposer.prepare(env, seed)

    def propose_moves(self, env: gym.Env, node: MeasuredNode, rng: np.random.Generator,
                      usage: Usage) -> list[int]:
        return self.proposer.propose_moves(env, node, rng, usage,
                                           lambda member: game(env).format_score(member.score))
