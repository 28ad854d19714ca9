"""PPO with invalid-action masking: sb3-contrib's ``MaskablePPO``, trained within a measurement
budget.

``run(env, budget, seed)`` trains a ``MultiInputPolicy`` on ``n_envs`` episodes of the environment
stepped together (:class:`~optarena.envs.vector.ArenaVectorEnv` over the same environment, seen by
SB3 through :class:`~optarena.agents.sb3.SB3VecEnv`): each step's new programs are measured as
one batch, and every measurement counts against the budget (the evaluator's, which the
:class:`~optarena.agents.base.Tracker` sets and the vector environment reads). The states reached
are recorded in the search result; once the budget is reached, steps that would measure a new
program do not apply and end their episode, so the budget is never exceeded; training stops at
the budget or after ``max_timesteps`` steps (repeats are free, so steps can outnumber
measurements).

``save_path`` keeps the trained policy (a ``.zip``); the agent ``ppo-guided``
(:mod:`~optarena.agents.guided`) searches with a kept policy, one trained here or by ``optarena
train``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from optarena.agents.base import SearchResult, Tracker
from optarena.envs.vector import ArenaVectorEnv


@dataclass
class PPOConfig:
    n_envs: int = 2
    """Episodes stepped together (one vector step measures their new programs as a batch)."""
    n_steps: int = 16
    """Steps per copy between updates."""
    batch_size: int = 16
    n_epochs: int = 4
    learning_rate: float = 3e-4
    gamma: float = 0.9
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    max_timesteps: int = 4096
    """Training steps at most (all copies together)."""
    save_path: str | None = None
    """Save the trained policy here (a ``.zip``)."""


class PPO:
    """sb3-contrib ``MaskablePPO`` as an agent."""

    name = "ppo"

    def __init__(self, config: PPOConfig | None = None) -> None:
        self.config = config or PPOConfig()
        self.model: Any = None

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        from sb3_contrib import MaskablePPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.logger import Logger

        from optarena.agents.sb3 import SB3VecEnv

        config = self.config
        tracker = Tracker(self.name, env, budget, seed)  # the budget the vector env reads
        venv = ArenaVectorEnv(env.unwrapped, config.n_envs, autoreset_mode="SameStep")
        paths: list[list[int]] = [[] for _ in range(config.n_envs)]

        def record(copy: int, info: dict[str, Any], action: int | None) -> None:
            if action is None:
                paths[copy] = []
            elif "invalid_action" not in info:
                paths[copy].append(action)
            tracker.observe(info, paths[copy])

        class StopAtBudget(BaseCallback):
            def _on_step(self) -> bool:
                return tracker.left > 0

        vec_env = SB3VecEnv(venv, record)
        vec_env.seed(seed)
        self.model = MaskablePPO(
            "MultiInputPolicy", vec_env, n_steps=config.n_steps, batch_size=config.batch_size,
            n_epochs=config.n_epochs, learning_rate=config.learning_rate, gamma=config.gamma,
            gae_lambda=config.gae_lambda, ent_coef=config.ent_coef, seed=seed, device="cpu")
        # SB3's default logger makes an empty folder in the temp dir per run; the result has it all
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.model.learn(total_timesteps=config.max_timesteps, callback=StopAtBudget())
        if config.save_path:
            self.save(config.save_path)
        result = tracker.finish()
        result.details = {"ppo": asdict(config), "timesteps": int(self.model.num_timesteps),
                          "updates": int(self.model._n_updates) // config.n_epochs}
        return result

    def save(self, path: str | Path) -> None:
        if self.model is None:
            raise RuntimeError("nothing to save: train with run() first")
        self.model.save(str(path))
