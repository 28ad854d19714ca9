"""The design space: MetaSchedule sketches, their knobs, and the actions that turn them.

A *sketch* is a schedule trace produced by MetaSchedule's ``post-order-apply`` space generator with
the default rules for the target (multi-level tiling, auto-inline, rfactor, random compute location,
parallel-vectorize-unroll). A sketch holds sampling instructions; a *state* fixes a value for each of
them and for each parallel annotation. These are the *knobs*:

========================  ======================================  ==============================
knob                      value                                   MetaSchedule mutator it mirrors
========================  ======================================  ==============================
``tile``                  factors of one loop, product = extent   ``MutateTileSize``
``categorical``           index into the candidates (unroll step)  ``MutateUnroll``
``compute_location``      -2 inline, -1 root, k >= 0 loop k       ``MutateComputeLocation``
``parallel``              max. extent of the fused parallel loop  ``MutateParallel``
========================  ======================================  ==============================

An action changes one knob of the current sketch. The action space has a fixed layout,
``n_actions = max_knobs * slots``: action ``a`` addresses knob ``a // slots`` and its sub-action
``a % slots``:

* tile knob with ``n`` factors: sub-action ``s`` is the ``s``-th ordered pair ``(i, j)``, ``i != j``;
  it moves the smallest prime factor of factor ``i`` to factor ``j`` (every factorization is
  reachable this way). The innermost factor stays within the sketch's ``max_innermost``.
* categorical knob: sub-action ``s`` selects candidate ``s``.
* compute-location knob: sub-action ``s`` selects location ``s - 2``; only the locations
  MetaSchedule accepts for the block in that state are offered (found by replaying the trace
  prefix: an unaccepted location snaps to the nearest accepted one below it).
* parallel knob: sub-action ``s`` selects extent ``PARALLEL_LADDER[s]`` (cores x 2^k).

States are *canonical*: replaying a trace reads every decision back, so one program has one state.
An action is *legal* when it changes the canonical state: tile moves that keep the innermost bound,
another unroll step or parallel extent, another accepted compute location. Its successor must still
pass every MetaSchedule postprocessor (``DisallowDynamicLoop``, ``RewriteParallelVectorizeUnroll``,
``RewriteReductionBlock``, ``RewriteLayout``); this is checked when the successor is built (on 864
sampled actions of Llama-3 attention and 771 of conv2d and the MoE expert, none failed).
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import tvm
import tvm_ffi
from gymnasium import spaces
from tvm.s_tir import Schedule, Trace
from tvm.s_tir.schedule import Instruction

from optarena.envs.contract import Outcome, error_summary
from optarena.envs.lru import LRU
from optarena.envs.tensor_schedule.target import kernel_threads
from optarena.envs.tensor_schedule.workload import Workload

KnobKind = Literal["tile", "categorical", "compute_location", "parallel"]
KNOB_KINDS: tuple[KnobKind, ...] = ("tile", "categorical", "compute_location", "parallel")
Value = int | tuple[int, ...]


def import_cpu_tensor_intrinsics() -> None:
    """Register TVM's tensor intrinsics for CPUs only.

    ``TuneContext`` imports ``tvm.s_tir.tensor_intrin``, whose ``__init__`` registers the CUDA, ROCm,
    Hexagon, RISC-V, Arm and x86 intrinsics: 44 s on a 2-core machine, 33 s of it CUDA. A CPU suite
    needs the host family only, so the package is registered without running its ``__init__`` and
    only the CPU module of this machine is imported (~2 s).
    """
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:  # pragma: no cover - TVM without tensor intrinsics
        return
    sys.modules[name] = importlib.util.module_from_spec(spec)
    family = "arm_cpu" if platform.machine() in ("aarch64", "arm64") else "x86"
    importlib.import_module(f"{name}.{family}")


class InvalidSchedule(Exception):
    """A state whose trace does not replay or does not pass the postprocessors."""


@dataclass(frozen=True)
class Knob:
    """One tunable decision of a sketch."""

    kind: KnobKind
    inst_index: int
    """Index of the instruction in the sketch trace."""
    label: str
    """Readable name: ``tile C.i``, ``unroll C``, ``compute_location exp``, ``parallel C``."""
    n: int = 0
    """Tile: number of factors."""
    max_innermost: int = 0
    """Tile: bound on the innermost factor (0: none)."""
    candidates: tuple[int, ...] = ()
    """Categorical: the values to choose from. Parallel: the extents to choose from."""

    def format(self, value: Value) -> str:
        if self.kind == "tile":
            return "[" + ", ".join(str(v) for v in value) + "]"  # type: ignore[union-attr]
        if self.kind == "categorical":
            return str(self.candidates[int(value)])  # type: ignore[arg-type]
        if self.kind == "compute_location":
            return {-2: "inline", -1: "root"}.get(int(value), f"loop {value}")  # type: ignore[arg-type]
        return str(value)


@dataclass(frozen=True)
class ScheduleState:
    """A point of a workload's design space (``problem``: the workload's name): the sketch and
    one value per knob."""

    problem: str
    sketch: int
    values: tuple[Value, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "sketch", int(self.sketch))  # a NumPy index is stored as int

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.problem, "sketch": self.sketch,
                "values": [list(v) if isinstance(v, tuple) else v for v in self.values]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScheduleState:
        return cls(
            str(data["problem"]),
            int(data["sketch"]),
            tuple(tuple(int(x) for x in v) if isinstance(v, list | tuple) else int(v)
                  for v in data["values"]),
        )


@dataclass(frozen=True)
class Action:
    """A decoded, structurally legal action."""

    id: int
    knob: int
    old: Value
    new: Value
    text: str


def _smallest_prime_factor(n: int) -> int:
    p = 2
    while p * p <= n:
        if n % p == 0:
            return p
        p += 1
    return n


@dataclass
class _Sketch:
    insts: list[Instruction]
    knobs: list[Knob]


class DesignSpace:
    """Sketches of one workload on one target, and exact transitions between their states."""

    def __init__(
        self,
        workload: Workload,
        target: tvm.target.Target,
        *,
        max_compute_location: int = 16,
        layout: tuple[int, int] | None = None,
        cache_size: int = 4096,
    ) -> None:
        """
        Args:
            workload: the program whose schedules form the space.
            target: the TVM target MetaSchedule generates sketches for.
            max_compute_location: compute-location choices offered (loops 0 .. n-1).
            layout: ``(max_knobs, slots)`` of the action space, to share one layout between the
                spaces of several workloads (default: this workload's own, the smallest).
            cache_size: replayed schedules and legal-action lists kept.
        """
        import_cpu_tensor_intrinsics()
        from tvm.s_tir import meta_schedule as ms

        self.workload = workload
        self.target = target
        self.context = ms.TuneContext(
            mod=workload.mod,
            target=target,
            space_generator="post-order-apply",
            search_strategy="evolutionary",
            task_name=workload.name,
            num_threads=1,
        )
        self.postprocs = list(self.context.space_generator.postprocs)
        cores = kernel_threads(target)
        self.parallel_ladder: tuple[int, ...] = tuple(cores * 2**k for k in range(7))
        self.max_compute_location = max_compute_location
        self.sketches = [
            self._read_sketch(sch) for sch in
            self.context.space_generator.generate_design_space(workload.mod)
        ]
        self.use_layout(layout or self.own_layout())
        self._schedules: LRU[ScheduleState, tuple[Schedule, ScheduleState] | InvalidSchedule] = \
            LRU(cache_size)
        self._legal: LRU[ScheduleState, tuple[Action, ...]] = LRU(cache_size)

    def use_layout(self, layout: tuple[int, int]) -> None:
        """Address actions with ``layout = (max_knobs, slots)`` (at least :meth:`own_layout`)."""
        knobs, slots = self.own_layout()
        if layout[0] < knobs or layout[1] < slots:
            raise ValueError(f"{self.workload.name} needs an action layout of at least {knobs} "
                             f"knobs x {slots} slots, not {layout}")
        self.max_knobs, self.slots = layout
        self.n_actions = self.max_knobs * self.slots

    def own_layout(self) -> tuple[int, int]:
        """``(knobs, slots)``: the smallest action layout that fits this workload's sketches."""
        return (max(len(s.knobs) for s in self.sketches),
                max([self._sub_actions(k) for s in self.sketches for k in s.knobs] or [1]))

    # ------------------------------------------------------------------ sketches and knobs

    def _read_sketch(self, sketch: Schedule) -> _Sketch:
        """Find the knobs of a sketch and give them readable labels."""
        insts = list(sketch.trace.insts)
        names: dict[Any, str] = {}
        original = Schedule(self.workload.mod)
        knobs: list[Knob] = []
        for index, inst in enumerate(insts):
            kind = inst.kind.name
            if kind == "GetSBlock":
                names[inst.outputs[0]] = str(inst.attrs[0])
            elif kind == "GetLoops":
                block = names.get(inst.inputs[0], "?")
                axes = _axis_names(original, block)
                for k, loop in enumerate(inst.outputs):
                    names[loop] = f"{block}.{axes[k] if k < len(axes) else k}"
            elif kind == "SamplePerfectTile":
                knobs.append(Knob(
                    "tile", index, f"tile {names.get(inst.inputs[0], '?')}",
                    n=int(inst.attrs[0]), max_innermost=int(inst.attrs[1]),
                ))
            elif kind == "SampleCategorical":
                use = next(
                    (u for u in insts[index + 1:] if u.kind.name == "Annotate"
                     and any(x.same_as(inst.outputs[0]) for x in u.inputs)),
                    None,
                )
                what = str(use.attrs[0]).removeprefix("meta_schedule.") if use else "choice"
                block = names.get(use.inputs[0], "?") if use else "?"
                knobs.append(Knob(
                    "categorical", index, f"{what} {block}",
                    candidates=tuple(int(c) for c in inst.attrs[0]),
                ))
            elif kind == "SampleComputeLocation":
                knobs.append(Knob(
                    "compute_location", index,
                    f"compute_location {names.get(inst.inputs[0], '?')}",
                ))
            elif kind == "Annotate" and str(inst.attrs[0]) == "meta_schedule.parallel":
                knobs.append(Knob(
                    "parallel", index, f"parallel {names.get(inst.inputs[0], '?')}",
                    candidates=self.parallel_ladder,
                ))
        return _Sketch(insts, knobs)

    def _sub_actions(self, knob: Knob) -> int:
        if knob.kind == "tile":
            return knob.n * (knob.n - 1)
        if knob.kind == "compute_location":
            return 2 + self.max_compute_location
        return len(knob.candidates)

    def knobs(self, sketch: int) -> list[Knob]:
        return self.sketches[sketch].knobs

    # ------------------------------------------------------------------ states and schedules

    def trace(self, state: ScheduleState) -> Trace:
        """The sketch's trace with the state's decisions and parallel extents."""
        sketch = self.sketches[state.sketch]
        insts = list(sketch.insts)
        decisions: dict[Instruction, Any] = {}
        for knob, value in zip(sketch.knobs, state.values, strict=True):
            inst = insts[knob.inst_index]
            if knob.kind == "parallel":
                insts[knob.inst_index] = Instruction(
                    inst.kind, [inst.inputs[0], tvm.tirx.IntImm("int32", int(value))],  # type: ignore[arg-type]
                    inst.attrs, inst.outputs,
                )
            elif knob.kind == "tile":
                decisions[inst] = [int(v) for v in value]  # type: ignore[union-attr]
            else:
                decisions[inst] = int(value)  # type: ignore[arg-type]
        return Trace(insts, decisions)

    def schedule(self, state: ScheduleState) -> Schedule:
        """Replay the state on the workload and run the postprocessors (cached).

        Raises :class:`InvalidSchedule` with the reason when the state is not a valid program.
        """
        return self._built(state)[0]

    def canonical(self, state: ScheduleState) -> ScheduleState:
        """The state with the decisions MetaSchedule actually applied when replaying it."""
        return self._built(state)[1]

    def _built(self, state: ScheduleState) -> tuple[Schedule, ScheduleState]:
        cached = self._schedules.get(state)
        if cached is None:
            cached = self._build(state)
            self._schedules.put(state, cached)
        if isinstance(cached, InvalidSchedule):
            raise cached
        return cached

    def _build(self, state: ScheduleState) -> tuple[Schedule, ScheduleState] | InvalidSchedule:
        if not 0 <= state.sketch < len(self.sketches):
            return InvalidSchedule(f"sketch {state.sketch} does not exist")
        if len(state.values) != len(self.sketches[state.sketch].knobs):
            return InvalidSchedule("state does not have one value per knob of its sketch")
        sch = Schedule(self.workload.mod, debug_mask=0)
        try:
            self.trace(state).apply_to_schedule(sch, remove_postproc=True)
        except (RuntimeError, ValueError, TypeError) as err:
            return InvalidSchedule(f"trace does not replay: {error_summary(err)}")
        canonical = self._read_values(state.sketch, sch)
        failure = self._postprocess(sch)
        return failure or (sch, canonical)

    def replay_json(self, trace: object) -> Schedule:
        """A trace in MetaSchedule's JSON form (e.g. from its database) replayed on the workload
        without its recorded postprocessing, then postprocessed as :meth:`schedule` does.
        Raises :class:`InvalidSchedule`."""
        sch = Schedule(self.workload.mod, debug_mask=0)
        try:
            Trace.apply_json_to_schedule(trace, sch)
            replayed = Schedule(self.workload.mod, debug_mask=0)
            sch.trace.apply_to_schedule(replayed, remove_postproc=True)
        except (RuntimeError, ValueError, TypeError) as err:
            raise InvalidSchedule(f"trace does not replay: {error_summary(err)}") from err
        failure = self._postprocess(replayed)
        if failure is not None:
            raise failure
        return replayed

    def state_of_trace(self, trace: object) -> ScheduleState:
        """The state whose program a MetaSchedule trace (JSON, e.g. from its tuning database)
        describes: the sketch whose knobs the trace has, in order, with the trace's decisions
        (MetaSchedule searches the same sketches; its database keeps traces without their dead
        instructions). ``ValueError`` when no sketch gives the trace's program."""
        try:
            replayed = self.replay_json(trace)
            sch = Schedule(self.workload.mod, debug_mask=0)
            Trace.apply_json_to_schedule(trace, sch)
            bare = Schedule(self.workload.mod, debug_mask=0)
            sch.trace.apply_to_schedule(bare, remove_postproc=True)
        except (InvalidSchedule, RuntimeError, ValueError, TypeError) as err:
            raise ValueError(f"trace does not replay on {self.workload.name}: "
                             f"{error_summary(err)}") from err
        decisions = dict(bare.trace.decisions)
        found: list[tuple[KnobKind, Value]] = []
        for inst in bare.trace.insts:
            kind = inst.kind.name
            if kind == "SamplePerfectTile":
                found.append(("tile", tuple(int(v) for v in decisions[inst])))
            elif kind == "SampleCategorical":
                found.append(("categorical", int(decisions[inst])))
            elif kind == "SampleComputeLocation":
                found.append(("compute_location", int(decisions[inst])))
            elif kind == "Annotate" and str(inst.attrs[0]) == "meta_schedule.parallel":
                found.append(("parallel", int(inst.inputs[1])))
        for index, sketch in enumerate(self.sketches):
            if [k.kind for k in sketch.knobs] != [kind for kind, _ in found]:
                continue
            try:
                state = self.canonical(ScheduleState(self.workload.name, index,
                                                     tuple(value for _, value in found)))
            except InvalidSchedule:
                continue
            if tvm_ffi.structural_equal(self.schedule(state).mod, replayed.mod):
                return state
        raise ValueError(f"the trace is of none of the {len(self.sketches)} sketches of "
                         f"{self.workload.name}")

    def _postprocess(self, sch: Schedule) -> InvalidSchedule | None:
        """Run the postprocessors on ``sch`` in place; the failure, if one rejects it."""
        sch.enter_postproc()
        for postproc in self.postprocs:
            try:
                ok = postproc.apply(sch)
            except RuntimeError as err:
                return InvalidSchedule(f"{postproc.legacy_repr()} failed: {error_summary(err)}")
            if not ok:
                return InvalidSchedule(f"rejected by {postproc.legacy_repr()}")
        return None

    def _read_values(self, sketch: int, sch: Schedule, upto: int | None = None) -> ScheduleState:
        """The knob values held by a replayed schedule's trace (only the knobs up to instruction
        ``upto`` when the trace is a prefix)."""
        s = self.sketches[sketch]
        insts = list(sch.trace.insts)
        decisions = dict(sch.trace.decisions)
        values: list[Value] = []
        for knob in s.knobs:
            if upto is not None and knob.inst_index > upto:
                break
            inst = insts[knob.inst_index]
            if knob.kind == "parallel":
                values.append(int(inst.inputs[1]))
            elif knob.kind == "tile":
                values.append(tuple(int(v) for v in decisions[inst]))
            else:
                values.append(int(decisions[inst]))
        return ScheduleState(self.workload.name, sketch, tuple(values))

    def is_valid(self, state: ScheduleState) -> bool:
        try:
            self.schedule(state)
        except InvalidSchedule:
            return False
        return True

    def sample(self, rng: np.random.Generator, sketch: int | None = None,
               max_tries: int = 256) -> ScheduleState:
        """A random valid state: the sketch's sampling instructions drawn afresh (MetaSchedule's
        initial population), retried until the postprocessors accept it."""
        for _ in range(max_tries):
            index = int(rng.integers(len(self.sketches))) if sketch is None else sketch
            s = self.sketches[index]
            sch = Schedule(self.workload.mod, seed=int(rng.integers(1, 2**31 - 1)), debug_mask=0)
            try:
                Trace(s.insts, {}).apply_to_schedule(
                    sch, remove_postproc=True, decision_provider=lambda *_: None
                )
            except RuntimeError:
                continue
            state = self._read_values(index, sch)
            if self.is_valid(state):
                return state
        raise InvalidSchedule(f"no valid sample of {self.workload.name} in {max_tries} tries")

    # ------------------------------------------------------------------ actions

    def decode(self, state: ScheduleState, action: int) -> Action | str:
        """The action's effect on the state, or why it is structurally illegal."""
        if not 0 <= action < self.n_actions:
            return f"action {action} is outside [0, {self.n_actions})"
        knobs = self.sketches[state.sketch].knobs
        index, sub = divmod(action, self.slots)
        if index >= len(knobs):
            return f"sketch {state.sketch} has {len(knobs)} knobs, action {action} addresses #{index}"
        knob, old = knobs[index], state.values[index]
        new: Value
        if knob.kind == "tile":
            pairs = [(i, j) for i in range(knob.n) for j in range(knob.n) if i != j]
            if sub >= len(pairs):
                return f"{knob.label} has {len(pairs)} moves, sub-action {sub} is not one"
            src, dst = pairs[sub]
            factors = list(old)  # type: ignore[arg-type]
            if factors[src] == 1:
                return f"{knob.label}: factor {src} is 1, nothing to move"
            prime = _smallest_prime_factor(factors[src])
            factors[src] //= prime
            factors[dst] *= prime
            if knob.max_innermost and factors[-1] > knob.max_innermost:
                return f"{knob.label}: innermost factor {factors[-1]} > {knob.max_innermost}"
            new = tuple(factors)
        elif knob.kind == "compute_location":
            if sub >= 2 + self.max_compute_location:
                return f"{knob.label}: no location for sub-action {sub}"
            new = sub - 2
        else:
            if sub >= len(knob.candidates):
                return f"{knob.label} has {len(knob.candidates)} choices, not {sub + 1}"
            new = sub if knob.kind == "categorical" else knob.candidates[sub]
        if new == old:
            return f"{knob.label} is already {knob.format(old)}"
        text = f"{knob.label}: {knob.format(old)} -> {knob.format(new)}"
        return Action(action, index, old, new, text)

    def successor(self, state: ScheduleState, action: Action) -> ScheduleState:
        """The canonical state the action leads to (raises :class:`InvalidSchedule`)."""
        values = list(state.values)
        values[action.knob] = action.new
        return self.canonical(ScheduleState(state.problem, state.sketch, tuple(values)))

    def locations(self, state: ScheduleState, knob: int) -> tuple[int, ...]:
        """Compute locations MetaSchedule accepts for a compute-location knob in this state.

        A location it does not accept snaps to the nearest accepted one below it, so probing
        downwards from the largest offered location finds each accepted one with one replay of
        the trace prefix.
        """
        inst_index = self.sketches[state.sketch].knobs[knob].inst_index
        found: list[int] = []
        probe = self.max_compute_location - 1
        while probe >= -2:
            values = list(state.values)
            values[knob] = probe
            trace = self.trace(ScheduleState(state.problem, state.sketch, tuple(values)))
            prefix = Trace(list(trace.insts)[: inst_index + 1], dict(trace.decisions))
            sch = Schedule(self.workload.mod, debug_mask=0)
            try:
                prefix.apply_to_schedule(sch, remove_postproc=True)
            except (RuntimeError, ValueError, TypeError):
                break
            got = int(self._read_values(state.sketch, sch, upto=inst_index).values[knob])
            if got > probe or got in found:
                break
            found.append(got)
            probe = got - 1
        return tuple(sorted(found))

    def legal_actions(self, state: ScheduleState) -> tuple[Action, ...]:
        """Every action that changes the canonical state (cached per state)."""
        cached = self._legal.get(state)
        if cached is not None:
            return cached
        legal = []
        for index, knob in enumerate(self.sketches[state.sketch].knobs):
            if knob.kind == "compute_location":
                subs = [v + 2 for v in self.locations(state, index)]
            else:
                subs = list(range(self._sub_actions(knob)))
            for sub in subs:
                action = self.decode(state, index * self.slots + sub)
                if isinstance(action, Action):
                    legal.append(action)
        result = tuple(legal)
        self._legal.put(state, result)
        return result

    def mask(self, state: ScheduleState) -> np.ndarray:
        mask = np.zeros(self.n_actions, dtype=np.int8)
        for action in self.legal_actions(state):
            mask[action.id] = 1
        return mask

    # ------------------------------------------------------------------ encodings

    def summary(self, state: ScheduleState) -> str:
        """One line per knob: the decisions of the state, for prompts and logs."""
        knobs = self.sketches[state.sketch].knobs
        lines = [f"sketch {state.sketch} of {len(self.sketches)}"]
        lines += [f"  {k.label} = {k.format(v)}" for k, v in zip(knobs, state.values, strict=True)]
        return "\n".join(lines)

    def encode(self, state: ScheduleState) -> tuple[np.ndarray, np.ndarray]:
        """Padded decision vector (4 numbers per knob) and knob-kind one-hots (4 per knob).

        Tile factors and parallel extents as log2, categorical choices as their index, compute
        locations as given (-2 inline, -1 root).
        """
        values = np.zeros((self.max_knobs, 4), dtype=np.float32)
        kinds = np.zeros((self.max_knobs, 4), dtype=np.int8)
        for i, (knob, value) in enumerate(
            zip(self.sketches[state.sketch].knobs, state.values, strict=True)
        ):
            kinds[i, KNOB_KINDS.index(knob.kind)] = 1
            if knob.kind == "tile":
                values[i, : len(value)] = np.log2(value)[-4:]  # type: ignore[arg-type]
            elif knob.kind == "parallel":
                values[i, 0] = np.log2(int(value))  # type: ignore[arg-type]
            else:
                values[i, 0] = int(value)  # type: ignore[arg-type]
        return values.reshape(-1), kinds.reshape(-1)


def _axis_names(original: Schedule, block: str) -> list[str]:
    try:
        sblock = original.get(original.get_sblock(block))
    except (RuntimeError, ValueError):
        return []
    return [iv.var.name for iv in sblock.iter_vars]


FEATURE_BOUND = 64.0
LOG_SPEEDUP_BOUND = 20.0
PER_STORE_FEATURES = 164
"""MetaSchedule's per-store feature vector (``PerStoreFeature``): the observation's summary of
the program is their mean and maximum over the program's stores."""


class TensorSpace:
    """The design spaces of one or more workloads, with one action and observation layout.

    The layout (``max_knobs`` x ``slots`` actions, ``max_knobs`` decision slots, ``max_sketches``
    sketch flags) is the largest the workloads need, or a larger one given, so that one policy
    acts on every workload: the unused slots are padding and masked. ``slots`` is at least the
    compute-location choices (``2 + max_compute_location``), so it does not depend on whether a
    workload has a compute-location knob.
    """

    random_start = True

    def __init__(self, workloads: Sequence[Workload], target: tvm.target.Target, *,
                 max_compute_location: int = 16, max_knobs: int | None = None,
                 max_sketches: int | None = None) -> None:
        own = [DesignSpace(w, target, max_compute_location=max_compute_location)
               for w in workloads]
        knobs = max(d.own_layout()[0] for d in own)
        slots = max(2 + max_compute_location, *(d.own_layout()[1] for d in own))
        if max_knobs is not None:
            if max_knobs < knobs:
                raise ValueError(f"the workloads need {knobs} knob slots, more than max_knobs="
                                 f"{max_knobs}")
            knobs = max_knobs
        for space in own:
            space.use_layout((knobs, slots))
        self.spaces = {d.workload.name: d for d in own}
        self.sketches = max(len(d.sketches) for d in own)
        if max_sketches is not None and max_sketches < self.sketches:
            raise ValueError(f"the workloads have up to {self.sketches} sketches, more than "
                             f"max_sketches={max_sketches}")
        self.max_sketches = max_sketches or self.sketches
        self.max_knobs, self.slots = knobs, slots
        self.n_actions = knobs * slots
        self.observation_space = spaces.Dict({
            "decisions": spaces.Box(-2.0, 32.0, (knobs * 4,), np.float32),
            "knob_kinds": spaces.MultiBinary(knobs * 4),
            "sketch": spaces.MultiBinary(self.max_sketches),
            "features": spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (2 * PER_STORE_FEATURES,),
                                   np.float32),
            "log_speedup": spaces.Box(-LOG_SPEEDUP_BOUND, LOG_SPEEDUP_BOUND, (1,), np.float32),
            "progress": spaces.Box(0.0, 1.0, (1,), np.float32),
        })
        from tvm.s_tir import meta_schedule as ms

        self._features = ms.feature_extractor.PerStoreFeature()

    def space(self, problem: str) -> DesignSpace:
        try:
            return self.spaces[problem]
        except KeyError:
            raise ValueError(f"unknown workload {problem!r}; this environment's: "
                             f"{list(self.spaces)}") from None

    def problems(self) -> Sequence[str]:
        return list(self.spaces)

    def initial(self, problem: str, rng: np.random.Generator) -> ScheduleState:
        """A random valid sample of the workload (MetaSchedule's initial population)."""
        return self.space(problem).sample(rng)

    def canonical(self, state: ScheduleState) -> ScheduleState:
        try:
            return self.space(state.problem).canonical(state)
        except InvalidSchedule as err:
            raise ValueError(f"not a valid state of {state.problem}: {err}") from err

    def state_from_json(self, data: Mapping[str, Any]) -> ScheduleState:
        return ScheduleState.from_json(data)

    def legal_mask(self, state: ScheduleState) -> np.ndarray:
        return self.space(state.problem).mask(state)

    def transition(self, state: ScheduleState, action: int) -> ScheduleState | str:
        space = self.space(state.problem)
        decoded = space.decode(state, action)
        if isinstance(decoded, str):
            return decoded
        try:
            successor = space.successor(state, decoded)
        except InvalidSchedule as err:
            return f"{decoded.text}: {err}"
        if successor == state:
            return f"{decoded.text}: MetaSchedule applies the same decisions (no change)"
        return successor

    def describe_actions(self, state: ScheduleState) -> list[dict[str, Any]]:
        space = self.space(state.problem)
        knobs = space.knobs(state.sketch)
        return [{"id": a.id, "knob": knobs[a.knob].label, "old": a.old, "new": a.new,
                 "text": a.text} for a in space.legal_actions(state)]

    def observe(self, state: ScheduleState, outcome: Outcome, reference: float, progress: float
                ) -> dict[str, np.ndarray]:
        from tvm.s_tir import meta_schedule as ms

        space = self.space(state.problem)
        schedule = space.schedule(state)
        candidate = ms.MeasureCandidate(
            schedule, ms.arg_info.ArgInfo.from_prim_func(schedule.mod["main"]))
        per_store = self._features.extract_from(space.context, [candidate])[0].numpy()
        summary = np.concatenate([per_store.mean(axis=0), per_store.max(axis=0)]) \
            if len(per_store) else np.zeros(2 * PER_STORE_FEATURES)
        decisions, kinds = space.encode(state)
        sketch = np.zeros(self.max_sketches, dtype=np.int8)
        sketch[state.sketch] = 1
        score = outcome.score if outcome.score is not None else reference
        return {
            "decisions": decisions,
            "knob_kinds": kinds,
            "sketch": sketch,
            "features": np.clip(summary, -FEATURE_BOUND, FEATURE_BOUND).astype(np.float32),
            "log_speedup": np.clip([np.log(reference / score)], -LOG_SPEEDUP_BOUND,
                                   LOG_SPEEDUP_BOUND).astype(np.float32),
            "progress": np.array([progress], dtype=np.float32),
        }
