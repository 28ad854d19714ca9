import json
import math

import numpy as np
import pytest
import tvm

from optarena.envs.tensor_schedule.space import Action, DesignSpace, ScheduleState, TensorSpace
from optarena.envs.tensor_schedule.target import host_target
from optarena.envs.tensor_schedule.workload import get_workload


@pytest.fixture(scope="module")
def conv_space() -> DesignSpace:
    # conv2d has every knob kind: tiles, unroll, parallel and the padding's compute location
    return DesignSpace(get_workload("conv2d-6-16"), tvm.target.Target(host_target()))


def test_knob_kinds_of_a_conv(conv_space):
    kinds = {k.kind for s in range(len(conv_space.sketches)) for k in conv_space.knobs(s)}
    assert kinds == {"tile", "categorical", "compute_location", "parallel"}


def test_samples_are_valid_and_seeded(conv_space):
    a = conv_space.sample(np.random.default_rng(5))
    b = conv_space.sample(np.random.default_rng(5))
    assert a == b and conv_space.is_valid(a)
    assert conv_space.canonical(a) == a


def test_tile_moves_keep_the_product_and_the_innermost_bound(conv_space):
    state = conv_space.sample(np.random.default_rng(1))
    knobs = conv_space.knobs(state.sketch)
    for action in conv_space.legal_actions(state):
        knob = knobs[action.knob]
        if knob.kind != "tile":
            continue
        assert math.prod(action.new) == math.prod(action.old)
        assert not knob.max_innermost or action.new[-1] <= knob.max_innermost
        moved = [o != n for o, n in zip(action.old, action.new, strict=True)]
        assert sum(moved) == 2


def test_every_legal_action_leads_to_a_different_valid_state(conv_space):
    rng = np.random.default_rng(2)
    for _ in range(2):
        state = conv_space.sample(rng)
        actions = conv_space.legal_actions(state)
        assert actions
        for action in actions:
            successor = conv_space.successor(state, action)
            assert successor != state and conv_space.is_valid(successor)
        mask = conv_space.mask(state)
        assert set(np.flatnonzero(mask)) == {a.id for a in actions}


def test_compute_locations_offered_are_the_ones_metaschedule_applies(conv_space):
    state = conv_space.sample(np.random.default_rng(3))
    index = next(i for i, k in enumerate(conv_space.knobs(state.sketch))
                 if k.kind == "compute_location")
    offered = conv_space.locations(state, index)
    assert -1 in offered
    for value in range(-2, conv_space.max_compute_location):
        values = list(state.values)
        values[index] = value
        pinned = ScheduleState(state.problem, state.sketch, tuple(values))
        applied = conv_space.canonical(pinned).values[index]
        assert applied in offered
        assert (applied == value) == (value in offered)


def test_illegal_actions_explain_themselves(conv_space):
    state = conv_space.sample(np.random.default_rng(4))
    assert "outside" in conv_space.decode(state, conv_space.n_actions)
    knobs = conv_space.knobs(state.sketch)
    tile = next(i for i, k in enumerate(knobs) if k.kind == "tile")
    ones = (*tuple(1 for _ in state.values[tile][:-1]), math.prod(state.values[tile]))
    values = list(state.values)
    values[tile] = ones
    pinned = ScheduleState(state.problem, state.sketch, tuple(values))
    reason = conv_space.decode(pinned, tile * conv_space.slots)  # move from factor 0, which is 1
    assert isinstance(reason, str) and "nothing to move" in reason
    categorical = next(i for i, k in enumerate(knobs) if k.kind == "categorical")
    same = conv_space.decode(state, categorical * conv_space.slots + state.values[categorical])
    assert isinstance(same, str) and "already" in same


def test_state_json_round_trip(conv_space):
    state = conv_space.sample(np.random.default_rng(6))
    assert ScheduleState.from_json(state.to_json()) == state
    indexed = ScheduleState(state.problem, np.int64(state.sketch), state.values)  # as PPO's
    assert json.loads(json.dumps(indexed.to_json())) == state.to_json()  # a results.jsonl line


def test_encoding_has_fixed_shape(conv_space):
    rng = np.random.default_rng(7)
    shapes = {tuple(a.shape for a in conv_space.encode(conv_space.sample(rng, sketch)))
              for sketch in range(len(conv_space.sketches))}
    assert shapes == {((conv_space.max_knobs * 4,), (conv_space.max_knobs * 4,))}


def test_action_text_names_the_change(conv_space):
    state = conv_space.sample(np.random.default_rng(8))
    action = conv_space.legal_actions(state)[0]
    assert isinstance(action, Action) and "->" in action.text
    assert conv_space.knobs(state.sketch)[action.knob].label in action.text


def test_several_workloads_share_one_action_layout():
    target = tvm.target.Target(host_target())
    space = TensorSpace([get_workload("matmul-64"), get_workload("conv2d-6-16")], target)
    layouts = {(d.max_knobs, d.slots, d.n_actions) for d in space.spaces.values()}
    assert layouts == {(space.max_knobs, space.slots, space.n_actions)}
    assert space.slots >= 2 + 16  # compute locations fit whatever the workload
    for problem in space.problems():
        state = space.initial(problem, np.random.default_rng(0))
        assert len(space.legal_mask(state)) == space.n_actions
        for action in np.flatnonzero(space.legal_mask(state))[:4]:
            assert not isinstance(space.transition(state, int(action)), str)
