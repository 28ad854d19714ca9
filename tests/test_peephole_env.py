import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from optarena.envs.aarch64_peephole.corpus import build_corpus, load_corpus

UNSEEN_C = """
struct point { long x, y, z, w; };
long norm1(const struct point *p) { return p->x + p->y + p->z + p->w; }
void shift(struct point *p, long d) { p->x += d; p->y += d; p->z += d; p->w += d; }
"""


@pytest.fixture(scope="module")
def env():
    env = gym.make("optarena/AArch64Peephole-v0")
    yield env
    env.close()


def _changed_blocks():
    return [b.id for b in load_corpus() if b.input != b.oracle]


def _greedy_episode(env, block_id):
    """Apply every legal pairing (rule 0: actions below max_instructions), first site first."""
    _, info = env.reset(options={"problem": block_id})
    pairing = env.unwrapped.max_instructions
    done = False
    while not done:
        legal = np.flatnonzero(info["action_mask"][:pairing])
        if len(legal) == 0:
            break
        _, _, terminated, truncated, info = env.step(int(legal[0]))
        assert "invalid_action" not in info, info["invalid_action"]
        done = terminated or truncated
    return info


def test_check_env(env):
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)


def test_greedy_pairing_reaches_the_oracle_with_zero_failed_verifications(env):
    saved_oracle = saved_greedy = 0
    for block_id in _changed_blocks():
        info = _greedy_episode(env, block_id)
        saved_oracle += info["reference_score"] - env.unwrapped.problem()["anchors"]["llvm"]
        saved_greedy += info["reference_score"] - info["score"]
    assert env.unwrapped.failed_verifications == 0
    assert saved_oracle > 0 and saved_greedy >= 0.95 * saved_oracle


def test_oracle_as_free_form_rewrite_earns_its_saving(env):
    block = next(b for b in load_corpus() if b.input != b.oracle)
    _, info = env.reset(options={"problem": block.id})
    _, reward, _, _, info = env.unwrapped.rewrite(block.oracle)
    assert "invalid_action" not in info
    oracle = env.unwrapped.problem()["anchors"]["llvm"]
    assert info["score"] == oracle and reward == pytest.approx(math.log(info["reference_score"]
                                                                        / oracle))


@pytest.mark.parametrize(("corruption", "kind"), [
    (lambda asm: asm.replace("ldp", "ldpp", 1), "assemble"),
    (lambda asm: asm.replace("#16]", "#24]", 1), None),
    (lambda asm: "\n".join(asm.splitlines()[:-1]) + "\n", None),
])
def test_unverified_rewrite_changes_nothing(env, corruption, kind):
    block = next(b for b in load_corpus() if b.input != b.oracle and "#16]" in b.oracle)
    _, before = env.reset(options={"problem": block.id})
    failed = env.unwrapped.failed_verifications
    _, reward, _, _, info = env.unwrapped.rewrite(corruption(block.oracle))
    assert reward == 0.0 and "free-form rewrite failed" in info["invalid_action"]
    assert kind is None or info["failure"]["kind"] == kind
    assert info["failure"]["kind"] in ("assemble", "register", "memory", "flags", "crash")
    assert info["state"] == before["state"]
    assert env.unwrapped.failed_verifications == failed + 1


def test_masked_action_is_reported(env):
    _, info = env.reset(options={"problem": _changed_blocks()[0]})
    masked = int(np.flatnonzero(info["action_mask"] == 0)[0])
    _, reward, _, _, info = env.step(masked)
    assert reward == 0.0 and "not a legal rewrite" in info["invalid_action"]


def test_text_variant_steps_with_a_block():
    env = gym.make("optarena/AArch64PeepholeText-v0")
    cycles = env.unwrapped.scorer.cycles
    block = next(b for b in load_corpus()
                 if b.input != b.oracle and cycles([b.oracle]) < cycles([b.input]))
    env.reset(options={"problem": block.id})
    _, reward, _, _, info = env.step(block.oracle)
    assert reward > 0 and info["state"]["asm"].split() == block.oracle.split()
    assert env.action_space.contains(block.oracle)


def test_unseen_c_file_goes_through_corpus_env_and_greedy(tmp_path: Path):
    source = tmp_path / "unseen.c"
    source.write_text(UNSEEN_C)
    corpus = tmp_path / "corpus.jsonl"
    pairs = build_corpus([source], corpus, opts=("-O1",), unchanged_share=1.0)
    assert {p.function for p in pairs} >= {"norm1", "shift"}
    env = gym.make("optarena/AArch64Peephole-v0", corpus=corpus)
    saved = 0
    for pair in pairs:
        info = _greedy_episode(env, pair.id)
        saved += info["reference_score"] - info["score"]
    assert saved > 0 and env.unwrapped.failed_verifications == 0


def test_cli_builds_a_corpus_and_scores_the_oracle(tmp_path: Path, capsys):
    import json

    from optarena.experiments.cli import main

    source = tmp_path / "unseen.c"
    source.write_text(UNSEEN_C)
    assert main(["peephole", "build-corpus", str(source), "--out", str(tmp_path),
                 "--opt", "O1,O2"]) == 0
    assert "changed by LLVM's pairing" in capsys.readouterr().out
    corpus = tmp_path / "corpus.jsonl"
    entries = [b for b in load_corpus(corpus) if b.input != b.oracle]
    assert entries
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": b.id, "asm": b.oracle}) + "\n"
                                   for b in entries))
    out = tmp_path / "scores.json"
    assert main(["peephole", "score", str(predictions), "--corpus", str(corpus),
                 "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["exact_match"] == scores["io_accuracy"] == 1.0 and scores["blocks"] == len(entries)
    assert scores["proved_equivalent"] == 1.0  # LLVM's own rewrites, each proved by the prover


def test_csmith_programs_with_fixed_seeds_build_a_corpus(tmp_path: Path, monkeypatch):
    """...and leave the working directory as it was (csmith writes ``platform.info`` into its
    own: it runs in a scratch directory)."""
    import shutil

    from optarena.envs.aarch64_peephole.corpus import generate_csmith

    if shutil.which("csmith") is None or not Path("/usr/include/csmith/csmith.h").exists():
        pytest.skip("csmith and libcsmith-dev are not installed (.ci/run installs them)")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    first = generate_csmith(1, 7, tmp_path / "a")
    again = generate_csmith(1, 7, tmp_path / "b")
    assert first[0].read_text() == again[0].read_text(), "a seed gives the same program"
    pairs = build_corpus(first, tmp_path / "corpus.jsonl", opts=("-O0",))
    assert len(pairs) > 20 and all(p.source == str(first[0]) for p in pairs)
    assert list(work.iterdir()) == []
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["csmith_7.c"]


def test_an_unknown_cpu_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match="pentium") as err:
        gym.make("optarena/AArch64Peephole-v0", mcpu="pentium")
    assert "neoverse-n1" in str(err.value) and "cortex-a53" in str(err.value)


def test_repeating_a_rewrite_is_not_a_new_measurement(env):
    block = _changed_blocks()[0]
    _, info = env.reset(options={"problem": block})
    action = int(np.flatnonzero(info["action_mask"])[0])
    _, _, _, _, first = env.step(action)
    count = env.unwrapped.evaluator.num_measurements
    env.reset(options={"problem": block})
    _, _, _, _, again = env.step(action)
    assert env.unwrapped.evaluator.num_measurements == count
    assert (again["score"] == first["score"] and first["improvement"] >= 1.0) or first["score"] > 0
