"""Cost-model priors: MetaSchedule's XGB model trained offline on measurements of other workloads.

A cost model pre-trained on other tensor programs ranks the schedules of a new one before any of
them is measured (TenSet, NeurIPS 2021 Datasets and Benchmarks); MetaSchedule shares one model
across the tasks of a tuning session for the same reason. :func:`collect` measures random
samples of the design space of each training workload (what MetaSchedule measures first) on
this machine, trains the model on all of them (each workload's throughputs normalized by its own
best) and saves it in MetaSchedule's format (a tar with the XGBoost booster and the features:
NumPy pickles, so load only priors you made or trust). Beside it, ``<name>.json`` says what it
cost: the workloads, the measurements, the machine, the settings and the file's SHA-256.

An environment starts its surrogate from a prior with ``surrogate_prior`` (the agent
``evolutionary-prior`` then lets it pick every measurement). The measurements a prior took are
not counted in a run's budget: a race using one states it, as it states the machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optarena.envs.host import cpu_model, replacing
from optarena.envs.tensor_schedule.cost_model import (
    file_sha256,
    learn,
    xgb_model,
    xgboost_file_format_quiet,
)
from optarena.envs.tensor_schedule.env import TensorScheduleEnv


def collect(workloads: Sequence[str], out: Path, *, samples: int = 200, seed: int = 0,
            env_kwargs: Mapping[str, Any] | None = None,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure ``samples`` distinct random schedules of each workload (early stopping off: a
    censored latency is no label), train one model on them all, save it to ``out`` and its
    metadata to ``out.with_suffix(".json")``; return the metadata."""
    if not workloads:
        raise ValueError("a prior needs at least one workload to measure")
    kwargs = dict(env_kwargs or {})
    kwargs["measure"] = {**dict(kwargs.get("measure") or {}), "early_stop": None}
    model = xgb_model(warmup=0, seed=seed)
    rng = np.random.default_rng(seed)
    measured: dict[str, dict[str, Any]] = {}
    started = time.time()
    target: Any = None
    for name in workloads:
        env = TensorScheduleEnv(name, **kwargs)
        try:
            target = json.loads(str(env.target))
            states = list(dict.fromkeys(env.initial_state(rng) for _ in range(samples)))
            clock = time.perf_counter()
            outcomes = env.evaluate(states)
            good = [(state, outcome.score) for state, outcome in zip(states, outcomes, strict=True)
                    if outcome.ok and outcome.score is not None and not outcome.censored]
            if not good:
                raise RuntimeError(f"{name}: none of {len(states)} random schedules ran")
            design = env.tensor_space.space(good[0][0].problem)
            learn(model, design.context, [design.schedule(state) for state, _ in good],
                  [float(latency) for _, latency in good])
            measured[name] = {"measurements": len(states), "labelled": len(good),
                              "best_latency_s": min(latency for _, latency in good),
                              "wall_s": round(time.perf_counter() - clock, 1)}
            say(f"{name}: {len(good)} of {len(states)} random schedules measured "
                f"({measured[name]['wall_s']} s)")
        finally:
            env.close()
    with replacing(out) as partial, xgboost_file_format_quiet():
        model.save(str(partial))
    meta = {"workloads": measured, "measurements": sum(m["measurements"] for m in measured.values()),
            "samples": samples, "seed": seed, "cpu": cpu_model(), "target": target,
            "env_kwargs": kwargs, "wall_s": round(time.time() - started, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sha256": file_sha256(out)}
    with replacing(out.with_suffix(".json")) as partial:
        partial.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return meta
