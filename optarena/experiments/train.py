"""``optarena train``: MaskablePPO trained on a split's training problems, tested zero-shot on its
held-out problems against the greedy rule and a random policy.

For each seed, a policy trains on ``n_envs`` episodes stepped together (one batch of measurements
per step: :class:`~optarena.envs.vector.ArenaVectorEnv`) over the split's training problems,
drawn at random at every reset. A step's reward is the environment's, the log of the score's
improvement, or with ``reward: anchor`` that divided by the log-improvement of the problem's
anchor over its start (``-Oz``'s for IR instructions, as CompilerGym's ``IrInstructionCountOz``
reward is relative to -Oz): an episode's return is then 1 where it reaches the anchor, on every
problem alike (a problem whose anchor gains nothing keeps the environment's reward). SB3 writes
its CSV and TensorBoard logs and a checkpoint every ``checkpoint_every`` steps; a run that is
stopped resumes from its last checkpoint. Then, on every held-out problem, one episode of
``max_steps`` each of

* the **policy** (deterministic, masked),
* the **greedy rule** (steepest descent: every legal successor measured, the best taken, until
  none improves),
* a **random policy** (uniform legal actions),

and the final scores, against the problem's reference (its start) and the environment's anchor
(its baseline's anchor, ``-Oz`` for IR instructions; else its first: LLVM's own
peephole): the geometric-mean improvement over the start and over the
anchor, and the share of the anchor's saving reached, ``sum(reference - final) / sum(reference
- anchor)``. ``DIR/report.md`` has the table (mean and 95% t-interval over seeds), the learning
curves (``curves.png``) and the training speed; ``DIR/episodes.jsonl`` every test episode
(:class:`optarena.records.TrainEpisode`, with the machine and software versions it ran on).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from optarena.envs.contract import Game, game
from optarena.envs.registry import kind
from optarena.envs.splits import Split, get_split
from optarena.envs.vector import ArenaVectorEnv
from optarena.experiments.config_file import load_config
from optarena.experiments.report import interval_text
from optarena.experiments.runs import machine_info, software_versions
from optarena.experiments.stats import paired_ratio_test, t_band
from optarena.records import RecordError, TrainEpisode, append_record, read_episodes

EPISODES = "episodes.jsonl"
LEGACY = "results.jsonl"
"""Where test episodes went before they had a file name of their own (``results.jsonl`` is a
run record's file)."""
REPORT = "report.md"
POLICIES = ("policy", "greedy", "random")


class PPOSettings(BaseModel):
    """MaskablePPO's settings (sb3-contrib's names)."""

    model_config = ConfigDict(extra="forbid")

    n_steps: int = Field(128, ge=1, description="steps per copy between updates")
    batch_size: int = Field(256, ge=1)
    n_epochs: int = Field(4, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, gt=0, le=1)
    ent_coef: float = Field(0.01, ge=0)


class TrainConfig(BaseModel):
    """A training run, as read from YAML."""

    model_config = ConfigDict(extra="forbid")

    name: str = "train"
    split: str = Field(description="a split id, e.g. peephole-csmith/v1 (optarena splits)")
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="environment arguments besides the split's")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    n_envs: int = Field(8, ge=1, description="episodes stepped together")
    total_timesteps: int = Field(100_000, ge=1, description="environment steps per seed")
    checkpoint_every: int = Field(10_000, ge=1, description="steps between checkpoints")
    ppo: PPOSettings = Field(default_factory=PPOSettings)
    reward: Literal["log", "anchor"] = Field(
        "log", description="log: the environment's reward (log-improvement per step); anchor: "
        "that over the log-improvement of the problem's anchor (the module docstring)")
    test_problems: int | None = Field(None, ge=1, description="held-out problems tested "
                                      "(default: all)")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return load_config(cls, path)


def train(config: TrainConfig, out: Path, console: Console | None = None) -> Path:
    """Train and test every seed of ``config`` into ``out`` (resuming what is there); returns
    the report."""
    console = console or Console()
    split = get_split(config.split)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    tested = {(e.seed, e.problem, e.policy) for e in episodes(out)}
    for seed in config.seeds:
        model = _train_seed(config, split, out / f"seed{seed}", seed, console)
        _test_seed(config, split, model, seed, out, tested, console)
    return write_train_report(out)


def _train_seed(config: TrainConfig, split: Split, folder: Path, seed: int,
                console: Console) -> Any:
    """The seed's policy: trained (resumed from its last checkpoint), or loaded when it was; its
    training speed goes to ``speed.json`` beside it."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import configure

    from optarena.agents.sb3 import SB3VecEnv

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / "model.zip"
    env = split.make("train", config.kwargs)
    scale = anchor_scale(game(env), _anchor_name(split, config)) if config.reward == "anchor" \
        else None
    vec = SB3VecEnv(ArenaVectorEnv(env.unwrapped, config.n_envs, autoreset_mode="SameStep"),
                    reward_scale=scale)
    vec.seed(seed)
    checkpoints = sorted((folder / "checkpoints").glob("*.zip"), key=_steps_of)
    start = time.perf_counter()
    try:
        if final.exists():
            console.print(f"seed {seed}: trained already ({final})")
            return MaskablePPO.load(str(final), device="cpu")
        if checkpoints:
            model = MaskablePPO.load(str(checkpoints[-1]), env=vec, device="cpu")
            console.print(f"seed {seed}: resuming from {checkpoints[-1].name}")
        else:
            model = MaskablePPO("MultiInputPolicy", vec, seed=seed, device="cpu",
                                **config.ppo.model_dump())
        model.set_logger(configure(str(folder / "logs"), ["csv", "tensorboard"]))
        done = int(model.num_timesteps)
        model.learn(total_timesteps=config.total_timesteps - done, reset_num_timesteps=False,
                    progress_bar=True, callback=CheckpointCallback(
                        max(config.checkpoint_every // config.n_envs, 1),
                        str(folder / "checkpoints"), name_prefix="ppo"))
        model.save(str(final))
        seconds = time.perf_counter() - start
        speed = {"steps": config.total_timesteps - done, "seconds": seconds,
                 "measurements": env.unwrapped.evaluator.num_measurements}
        (folder / "speed.json").write_text(json.dumps(speed))
        return model
    finally:
        vec.close()


def anchor_scale(inner: Game[Any], anchor: str | None) -> Callable[[str], float]:
    """Problem -> ``log(reference / anchor's score)``, its anchor's log-improvement over its
    start (``anchor``, else the problem's first; 1 where there is none or it improves nothing):
    the anchor the test episodes are compared with. Asked once per problem."""
    known: dict[str, float] = {}

    def scale(problem: str) -> float:
        if problem not in known:
            anchors = inner.evaluator.anchors(problem)
            outcome = anchors.get(anchor) if anchor else next(iter(anchors.values()), None)
            gain = 0.0
            if outcome is not None and outcome.score:
                gain = math.log(inner.reference_score(problem) / outcome.score)
            known[problem] = gain if gain > 0 else 1.0
        return known[problem]

    return scale


def _anchor_name(split: Split, config: TrainConfig) -> str | None:
    """The anchor the environment's policy names as its baseline (``anchor:-Oz``), if any."""
    baseline = kind(split.env).policy_for({**split.kwargs, **config.kwargs}).baseline
    return baseline.removeprefix("anchor:") if baseline.startswith("anchor:") else None


def episodes(out: Path) -> list[TrainEpisode]:
    """The test episodes recorded in ``out`` (:class:`~optarena.records.RecordError` for a
    directory whose episodes are still in its ``results.jsonl``)."""
    if (out / LEGACY).exists() and not (out / EPISODES).exists():
        raise RecordError(f"{out / LEGACY} holds the test episodes of an older optarena train: "
                          f"rename it to {EPISODES}")
    return read_episodes(out / EPISODES)


def _steps_of(path: Path) -> int:
    """The step count in a checkpoint's name (``ppo_20000_steps.zip``)."""
    return int(path.stem.split("_")[-2])


def _read_speed(folder: Path) -> dict[str, float]:
    path = folder / "speed.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _test_seed(config: TrainConfig, split: Split, model: Any, seed: int, out: Path,
               tested: set[tuple[int, str, str]], console: Console) -> None:
    from optarena.agents.greedy import descend

    _, problems = split.problems()
    problems = problems[: config.test_problems]
    env = split.make("test", config.kwargs)
    inner = game(env)
    anchor_name = _anchor_name(split, config)
    machine, versions = machine_info(), software_versions()
    rng = np.random.default_rng(seed)
    try:
        for problem in problems:
            for policy in POLICIES:
                if (seed, problem, policy) in tested:
                    continue
                obs, info = env.reset(seed=seed, options={"problem": problem})
                start, reference = inner.get_state(), float(info["score"])
                if policy == "greedy":
                    _, final, _ = descend(inner, start, reference, lambda: 10**9,
                                          max_moves=inner.max_steps)
                else:
                    final = _episode(env, model if policy == "policy" else None, obs, info, rng)
                anchors = inner.problem()["anchors"]
                name = anchor_name or next(iter(anchors), None)
                append_record(out / EPISODES, TrainEpisode(
                    seed=seed, problem=problem, policy=policy, reference=reference, final=final,
                    anchor=anchors.get(name) if name else None, anchor_name=name,
                    split=split.id, machine=machine, versions=versions))
                tested.add((seed, problem, policy))
        console.print(f"seed {seed}: tested on {len(problems)} held-out problems")
    finally:
        env.close()


def _episode(env: Any, model: Any, obs: Any, info: dict[str, Any],
             rng: np.random.Generator) -> float:
    """The final score of one episode of the policy (``None``: uniform legal actions)."""
    done = False
    while not done and info["action_mask"].any():
        mask = info["action_mask"].astype(bool)
        if model is None:
            action = int(rng.choice(np.flatnonzero(mask)))
        else:
            action = int(model.predict(obs, action_masks=mask, deterministic=True)[0])
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return float(info["score"])


def summarize(records: list[TrainEpisode]) -> dict[str, dict[str, list[float]]]:
    """Per policy, per seed: geometric-mean improvement over the start and over the anchor, the
    share of problems where it is at least as good as the anchor, and the share of the anchor's
    saving reached (only where the anchor saves something in all)."""
    table: dict[str, dict[str, list[float]]] = {}
    for policy in POLICIES:
        rows: dict[str, list[float]] = {"improvement": [], "vs_anchor": [], "matches": [],
                                        "share": []}
        for seed in sorted({r.seed for r in records}):
            mine = [r for r in records if r.policy == policy and r.seed == seed]
            if not mine:
                continue
            rows["improvement"].append(_geomean([r.reference / r.final for r in mine]))
            anchored = [(r, r.anchor) for r in mine if r.anchor]
            if anchored:
                rows["vs_anchor"].append(_geomean([a / r.final for r, a in anchored]))
                rows["matches"].append(float(np.mean([r.final <= a for r, a in anchored])))
                saved = sum(r.reference - a for r, a in anchored)
                if saved > 0:
                    rows["share"].append(sum(r.reference - r.final for r, _ in anchored) / saved)
        table[policy] = rows
    return table


def _anchor_saving(records: list[TrainEpisode]) -> str:
    """The anchor's total saving over the start on the tested problems (one seed's records)."""
    first = [(r, r.anchor) for r in records
             if r.seed == records[0].seed and r.policy == "greedy" and r.anchor]
    saved = sum(r.reference - a for r, a in first)
    start = sum(r.reference for r, _ in first)
    return f"here it saves {saved:.0f} of {start:.0f} in all" if first else "no anchor"


def _provenance(records: list[TrainEpisode]) -> str:
    """The machines and software versions the episodes ran on, as they recorded them."""
    machines = dict.fromkeys(f"{r.machine.cpu}, {r.machine.cores} cores"
                             for r in records if r.machine)
    versions = dict.fromkeys(json.dumps(r.versions) for r in records if r.versions)
    if not machines:
        return "Machine and versions: not recorded (episodes of an older optarena train)."
    return f"Machine: {' and '.join(machines)}; versions {' and '.join(versions)}."


def _geomean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def _cell(values: list[float], percent: bool = False) -> str:
    if not values:
        return "—"
    band = t_band(np.asarray(values, dtype=float))
    scale, unit = (100.0, "%") if percent else (1.0, "x")
    low, high = float(band.low) * scale, float(band.high) * scale
    mean = float(band.center) * scale
    interval = "" if len(values) < 2 or not math.isfinite(low) else f" [{low:.2f}, {high:.2f}]"
    return f"{mean:.3f}{unit}{interval}"


def write_train_report(out: Path) -> Path:
    """``report.md`` and ``curves.png`` of the training run in ``out``."""
    config = TrainConfig.load(out / "config.yaml")
    records = episodes(out)
    table = summarize(records)
    anchor = records[0].anchor_name if records else "—"
    lines = [f"# optarena train: {config.name}", "",
             f"Split `{config.split}`, {len(config.seeds)} seeds, {config.total_timesteps} steps "
             f"per seed on {config.n_envs} episodes at once, reward `{config.reward}`, "
             "MaskablePPO "
             f"`{config.ppo.model_dump()}`. {_provenance(records)}", "",
             f"Held-out problems tested: {len({r.problem for r in records})}. Each cell: mean "
             "over seeds [95% t-interval]. Improvement: geometric mean of start / final score; "
             f"vs anchor: of `{anchor}` / final; at least the anchor: the share of problems "
             "whose final score is the anchor's or better; share of the saving: sum(start - "
             "final) / sum(start - anchor), the part of the anchor's saving reached (— where "
             f"the anchor saves nothing in all: {_anchor_saving(records)}).", "",
             "| policy | improvement over the start | vs the anchor | at least the anchor | "
             "share of the anchor's saving |", "|---|---|---|---|---|"]
    for policy, rows in table.items():
        lines.append(f"| {policy} | {_cell(rows['improvement'])} | {_cell(rows['vs_anchor'])} "
                     f"| {_cell(rows['matches'], percent=True)} "
                     f"| {_cell(rows['share'], percent=True)} |")
    lines += ["", "The policy against the others, paired by (seed, problem): geometric mean of "
              "the other's final score over the policy's (above 1: the policy ends better) "
              "[95% CI], two-sided Wilcoxon signed-rank test.", "",
              "| policy against | pairs | other / policy | p |", "|---|---|---|---|"]
    for other in POLICIES[1:]:
        test = paired_ratio_test(_finals(records, other), _finals(records, "policy"))
        lines.append(f"| {other} | {test.pairs} | {interval_text(test.ratio)} | {test.p_value:.3g} |")
    lines += ["", "| seed | training steps | seconds | steps/s | measurements |",
              "|---|---|---|---|---|"]
    for seed in config.seeds:
        speed = _read_speed(out / f"seed{seed}")
        if speed:
            lines.append(f"| {seed} | {speed['steps']:.0f} | {speed['seconds']:.0f} | "
                         f"{speed['steps'] / speed['seconds']:.0f} | "
                         f"{speed['measurements']:.0f} |")
    _plot_curves(config, out)
    lines += ["", "![learning curves](curves.png)", ""]
    path = out / REPORT
    path.write_text("\n".join(lines))
    return path


def _finals(records: list[TrainEpisode], policy: str) -> dict[tuple[int, str], float]:
    """``policy``'s final score of each (seed, problem)."""
    return {(r.seed, r.problem): r.final for r in records if r.policy == policy}


def _plot_curves(config: TrainConfig, out: Path) -> None:
    """Mean episode reward against training steps, one line per seed (SB3's CSV log)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    for seed in config.seeds:
        log = out / f"seed{seed}" / "logs" / "progress.csv"
        if not log.exists():
            continue
        with log.open() as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("rollout/ep_rew_mean")]
        axes.plot([float(r["time/total_timesteps"]) for r in rows],
                  [float(r["rollout/ep_rew_mean"]) for r in rows], label=f"seed {seed}")
    axes.set_xlabel("environment steps")
    axes.set_ylabel("mean episode return (log improvement" +
                    (" over the anchor's)" if config.reward == "anchor" else ")"))
    axes.set_title(f"{config.split}: MaskablePPO", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "curves.png")
    plt.close(figure)
