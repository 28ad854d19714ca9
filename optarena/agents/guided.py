"""Policy-guided search: walks whose actions a trained policy draws ("PPO + guided search").

The best entry of CompilerGym's ``llvm-ic-v0`` leaderboard (Fröhlich, Schmöcker and Mahlau, 1.070x
of -Oz on cBench, a policy trained on cBench itself) trains PPO, then runs a random search whose
actions are drawn from the policy's action probabilities, walks of up to 200 passes, one minute
per program. This agent is that search over a MaskablePPO policy trained by ``optarena train``
(``policy``: its ``model.zip``), on any environment whose spaces the policy was trained on.

Its first sample is ``reset(seed)``, every agent's first sample for the seed. Each round is one
episode from a start (the first the seed's, later ones resets with seeds drawn from the run's):
at each step the policy's action probabilities over the legal actions, sharpened or flattened by
``temperature`` (1: as trained; towards 0: its most likely action; large: uniform, random
search), give the action; every new program is measured as it is reached. An episode ends where
the environment ends it (``max_steps``, the stop action if the policy takes it) or after
``patience`` steps in a row that found no new best of the run. An episode that measured nothing
new (a confident policy repeats itself) makes the next one hotter (``reheat`` times the
temperature), back to ``temperature`` after one that measures: the search goes on towards random
search instead of stopping while it has budget. The walk's observations are the
environment's own, so a policy must have been trained on the same observation and action spaces
(``observation``, ``stop_action``): one of other spaces is refused with both named. The episode's
progress feature is relative to the environment's ``max_steps``, which may differ from training's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker


@dataclass
class PolicyGuidedConfig:
    policy: str = ""
    """The trained MaskablePPO policy (a ``model.zip`` of ``optarena train``)."""
    temperature: float = 1.0
    """Divides the policy's log-probabilities before sampling (must be positive)."""
    patience: int = 0
    """End an episode after this many steps in a row without a new best of the run (0: only
    where the environment ends it)."""
    reheat: float = 2.0
    """The temperature's factor after an episode that measured nothing new (at least 1)."""
    max_stalls: int = 50
    """Stop after this many episodes in a row that measured nothing new (all cached)."""

    def __post_init__(self) -> None:
        if not self.policy:
            raise ValueError("policy is required: the model.zip of a policy trained by "
                             "optarena train")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")
        if self.reheat < 1:
            raise ValueError(f"reheat must be at least 1, not {self.reheat}")
        if self.patience < 0:
            raise ValueError(f"patience must be at least 0, not {self.patience}")


class PolicyGuided:
    """Random search whose actions a trained policy draws."""

    name = "ppo-guided"

    def __init__(self, config: PolicyGuidedConfig) -> None:
        self.config = config
        self.model: Any = None

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        config, model = self.config, self.policy_for(env)
        rng = np.random.default_rng(seed)
        tracker = Tracker(self.name, env, budget, seed)
        temperature, hottest = config.temperature, config.temperature
        for _ in tracker.rounds(config.max_stalls):
            before = tracker.used
            obs, info = tracker.start(rng)
            actions: list[int] = []
            waiting, done = config.patience or -1, False
            while not done and waiting != 0 and tracker.left > 0 and info["action_mask"].any():
                action = self.draw(model, obs, info["action_mask"].astype(bool), rng,
                                   temperature)
                best = tracker.result.best_score
                obs, _, terminated, truncated, info = env.step(action)
                if "invalid_action" not in info:
                    actions.append(action)
                tracker.observe(info, actions)
                done = terminated or truncated
                if waiting > 0:
                    waiting = config.patience if tracker.result.best_score < best else waiting - 1
            temperature = config.temperature if tracker.used > before else \
                temperature * config.reheat
            hottest = max(hottest, temperature)
        result = tracker.finish()
        result.details = {"policy": config.policy, "temperature": config.temperature,
                          "hottest": hottest, "episodes": tracker.starts}
        return result

    @staticmethod
    def draw(model: Any, obs: Any, mask: np.ndarray, rng: np.random.Generator,
             temperature: float) -> int:
        """An action drawn from the policy's probabilities at ``obs`` over the legal ones
        (``mask``), its log-probabilities divided by ``temperature``."""
        import torch

        with torch.no_grad():
            tensor, _ = model.policy.obs_to_tensor(obs)
            logits = model.policy.get_distribution(tensor).distribution.logits[0].numpy()
        scaled = np.where(mask, logits.astype(np.float64) / temperature, -np.inf)
        weights = np.exp(scaled - scaled.max())
        return int(rng.choice(len(weights), p=weights / weights.sum()))

    def policy_for(self, env: gym.Env) -> Any:
        """The policy (loaded once), checked against ``env``'s spaces (``ValueError`` naming
        both)."""
        from sb3_contrib import MaskablePPO

        if self.model is None:
            path = Path(self.config.policy)
            if not path.is_file():
                raise ValueError(f"no policy at {path}: give the model.zip of a policy "
                                 "trained by optarena train")
            try:
                self.model = MaskablePPO.load(str(path), device="cpu")
            except Exception as err:  # a zip of something else: SB3 raises what it meets
                raise ValueError(f"{path} is not a MaskablePPO policy: {err}") from None
        for what, theirs, ours in (("observation", self.model.observation_space,
                                    env.observation_space),
                                   ("action", self.model.action_space, env.action_space)):
            if theirs != ours:
                raise ValueError(f"the policy {self.config.policy} was trained on the "
                                 f"{what} space {theirs}, the environment has {ours} (train it "
                                 "with the environment's observation and stop_action)")
        return self.model
