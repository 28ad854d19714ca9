"""stable-baselines3's view of an optarena vector environment: :class:`SB3VecEnv`.

SB3 (and sb3-contrib's ``MaskablePPO``) train on a ``VecEnv``: ``step_async``/``step_wait``,
episodes reset in the same step with the last observation in ``info["terminal_observation"]``,
one ``info`` dict per copy, and action masks through ``env_method("action_masks")``. The adapter
gives that over :class:`~optarena.envs.vector.ArenaVectorEnv` (``autoreset_mode="SameStep"``), so
a policy trains on batched steps: every step's new programs are measured as one batch.
``record`` (optional) sees every state a copy reaches: ``record(copy, info, action)``, with
``action`` ``None`` for an episode's start (the PPO agent keeps its search result there).
``reward_scale`` (optional) divides each step's reward by a number of the step's problem
(``optarena train``'s ``reward: anchor``: the log-gain of the problem's anchor over its start).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.vector_env import AutoresetMode
from gymnasium.wrappers.vector import DictInfoToList
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from optarena.envs.vector import ArenaVectorEnv


class SB3VecEnv(VecEnv):
    """An :class:`ArenaVectorEnv` as a stable-baselines3 ``VecEnv``."""

    def __init__(self, venv: ArenaVectorEnv,
                 record: Callable[[int, dict[str, Any], int | None], None] | None = None,
                 reward_scale: Callable[[str], float] | None = None) -> None:
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError("stable-baselines3 resets episodes in the step that ends them: "
                             "make the vector environment with autoreset_mode='SameStep'")
        self.venv = venv
        self.listed = DictInfoToList(venv)
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.record = record or (lambda copy, info, action: None)
        self.reward_scale = reward_scale
        self._actions: np.ndarray | None = None

    def reset(self) -> Any:
        seeds = list(self._seeds) if any(s is not None for s in self._seeds) else None
        observations, infos = self.listed.reset(seed=seeds)
        self.reset_infos = list(infos)
        self._reset_seeds()
        for index, info in enumerate(infos):
            self.record(index, info, None)
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        assert self._actions is not None, "step_async first"
        observations, rewards, terminated, truncated, infos = self.listed.step(self._actions)
        dones = terminated | truncated
        rewards = rewards.astype(np.float32)
        out = []
        for index, info in enumerate(infos):
            info = dict(info)
            action = int(self._actions[index])
            if self.reward_scale is not None:
                stepped = info["final_info"] if dones[index] else info
                rewards[index] /= self.reward_scale(
                    self.venv.env.as_state(stepped["state"]).problem)
            if dones[index]:
                info["terminal_observation"] = info.pop("final_obs")
                info["TimeLimit.truncated"] = bool(truncated[index] and not terminated[index])
                self.record(index, info.pop("final_info"), action)
                self.record(index, info, None)  # the new episode's start
            else:
                self.record(index, info, action)
            out.append(info)
        return observations, rewards, dones, out

    def close(self) -> None:
        self.venv.close()

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        if method_name != "action_masks":
            raise AttributeError(f"{type(self).__name__} calls action_masks only, not "
                                 f"{method_name}")
        masks = self.venv.action_masks()
        return [masks[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.venv.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"the copies share one environment: set {attr_name} on it")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper],
                       indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
