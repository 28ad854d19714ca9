"""The tensor environment's cost model: MetaSchedule's XGB model, trained on measurements.

:class:`Surrogate` estimates the latency of schedules the environment has not measured (the
scorer trains it on every counted measurement: ``surrogate=True``). :func:`xgb_model` and
:func:`learn` are how optarena makes and trains MetaSchedule's model, for the surrogate and for
the cost-model priors (:mod:`~optarena.envs.tensor_schedule.prior`: a model trained offline on
other workloads, which a surrogate starts from); :func:`describe` says what a prior is and cost.

Measuring is :mod:`~optarena.envs.tensor_schedule.measure`'s; nothing here measures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def xgb_model(*, warmup: int, seed: int = 43) -> Any:
    """MetaSchedule's XGB cost model as optarena trains it: seeded, one thread, retrained on all
    its data at every update, its features extracted once per program (:class:`CachedFeatures`)."""
    from tvm.s_tir import meta_schedule as ms

    model = ms.cost_model.XGBModel(
        config=ms.cost_model.xgb_model.XGBConfig(seed=seed, nthread=1),
        num_warmup_samples=warmup, adaptive_training=False, verbose_eval=0,
    )
    model.extractor = CachedFeatures(model.extractor)
    return model


class CachedFeatures:
    """A feature extractor that extracts each program's features once.

    MetaSchedule's per-store features are a function of the scheduled program alone, but
    ``XGBModel`` extracts them at every ``predict`` and ``update``: a planner that re-estimates
    its tree's states after each batch (the model has learned) would extract the same programs'
    features again each round (feature extraction was a quarter of a ``puct`` run, profiled on a
    2-core AMD EPYC). This wraps the model's extractor and keys what it extracted by the program's
    structural hash; predictions are unchanged. ``XGBModel`` calls its extractor from Python only
    (``extract_from``), so a plain object serves.
    """

    def __init__(self, extractor: Any) -> None:
        self.extractor = extractor
        self.features: dict[int, Any] = {}
        self.extracted = 0
        """Programs whose features were extracted (not taken from the cache)."""

    def extract_from(self, context: Any, candidates: Sequence[Any]) -> list[Any]:
        from optarena.envs.tensor_schedule.workload import tvm_structural_hash

        keys = [tvm_structural_hash(c.sch.mod) for c in candidates]
        missing = {k: c for k, c in zip(keys, candidates, strict=True) if k not in self.features}
        if missing:
            extracted = self.extractor.extract_from(context, list(missing.values()))
            self.features.update(zip(missing, extracted, strict=True))
            self.extracted += len(missing)
        return [self.features[k] for k in keys]


@contextlib.contextmanager
def xgboost_file_format_quiet() -> Iterator[None]:
    """Silence XGBoost's warnings about the booster file's format when MetaSchedule saves or
    loads a model (it names the file ``model.bin``; the format is XGBoost's default, UBJSON)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(UBJSON|Unknown file format)",
                                category=UserWarning)
        yield


def learn(model: Any, context: Any, schedules: Sequence[Any], latencies: Sequence[float]) -> None:
    """Add the measured ``latencies`` of ``schedules`` (of ``context``'s workload, one feature
    group) to ``model`` and retrain it."""
    from tvm.s_tir import meta_schedule as ms

    model.update(context, _candidates(schedules),
                 [ms.runner.RunnerResult([latency], None) for latency in latencies])


def _candidates(schedules: Sequence[Any]) -> list[Any]:
    from tvm.s_tir import meta_schedule as ms

    return [ms.MeasureCandidate(s, ms.arg_info.ArgInfo.from_prim_func(s.mod["main"]))
            for s in schedules]


class Surrogate:
    """MetaSchedule's XGBoost cost model over its per-store features, as a cheap latency estimate.

    It is trained on every successful measurement the environment makes and predicts a latency
    for unmeasured schedules. XGBModel scores are throughputs normalized by the best measured
    program, so the estimate is ``best latency / score``. Until ``warmup`` measurements exist,
    the scores are random, as stock MetaSchedule's are for its first samples, but drawn from a
    seeded generator (MetaSchedule draws from NumPy's global one); :attr:`ready` says whether
    the estimate is informed.

    With a ``prior`` (a model saved by :func:`optarena.envs.tensor_schedule.prior.collect`:
    measurements of other workloads), the model starts from that data and is informed before
    the first measurement; every update retrains it on the prior's data and the run's (each
    workload's throughputs normalized by its own best, as MetaSchedule shares one model across
    the tasks of a tuning session).
    """

    def __init__(self, context: Any, *, warmup: int = 8, seed: int = 43,
                 prior: Path | None = None) -> None:
        self.context = context
        self.warmup = warmup
        self.model = xgb_model(warmup=warmup, seed=seed)
        if prior is not None:
            with xgboost_file_format_quiet():
                self.model.load(str(prior))
        self.prior = prior
        self.num_samples = 0
        self.num_calls = 0
        self.rng = np.random.default_rng(seed)
        self.best_latency: float | None = None

    @property
    def ready(self) -> bool:
        return self.prior is not None or self.num_samples >= self.warmup

    def update(self, schedules: Sequence[Any], latencies: Sequence[float]) -> None:
        learn(self.model, self.context, schedules, latencies)
        self.num_samples += len(latencies)
        best = min(latencies)
        self.best_latency = best if self.best_latency is None else min(best, self.best_latency)

    def estimate(self, schedules: list[Any]) -> np.ndarray:
        """Estimated latency in seconds of each schedule (before the first measurement, with a
        prior: a relative one, which ranks but has no unit)."""
        self.num_calls += len(schedules)
        if not self.ready:  # MetaSchedule's model draws from the unseeded global NumPy RNG here
            scores = self.rng.uniform(0, 1, len(schedules))
        else:
            scores = np.asarray(self.model.predict(self.context, _candidates(schedules)))
        best = self.best_latency if self.best_latency is not None else 1.0
        return best / np.maximum(scores, 1e-6)


def describe(prior: Path) -> dict[str, Any]:
    """What a prior cost and where it was measured (its ``.json``), with the file's SHA-256 now:
    recorded with every run that uses it."""
    meta_path = prior.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    digest = file_sha256(prior)
    return {"path": str(prior), "sha256": digest,
            "matches_metadata": meta.get("sha256") == digest if meta else None,
            **{key: meta[key] for key in ("measurements", "cpu", "workloads", "samples", "seed")
               if key in meta}}


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file (hex)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
