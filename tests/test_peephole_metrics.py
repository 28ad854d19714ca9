import json

import pytest

from optarena.envs.aarch64_peephole.corpus import load_corpus
from optarena.envs.aarch64_peephole.metrics import normalize, read_predictions, score


@pytest.fixture(scope="module")
def changed():
    return [b for b in load_corpus() if b.input != b.oracle][:12]


def test_oracle_scores_perfectly(changed):
    scores = score({b.id: b.oracle for b in changed}, changed)
    assert scores.blocks == 12
    assert scores.exact_match == scores.io_accuracy == scores.syntactic_accuracy == 1.0
    assert scores.bleu == pytest.approx(100.0)
    assert scores.cycles_saved_vs_oracle == pytest.approx(1.0)
    assert scores.failures == {}


def test_corrupted_predictions_score_lower_with_error_classes(changed):
    predictions = {}
    for n, block in enumerate(changed):
        lines = block.oracle.splitlines()
        if n % 4 == 0:
            predictions[block.id] = block.oracle.replace("ldp", "ldpx", 1)       # syntax
        elif n % 4 == 1:
            predictions[block.id] = "\n".join(lines[:-1]) + "\n"               # dropped line
        elif n % 4 == 2:
            predictions[block.id] = block.input                                # no change
        else:
            predictions[block.id] = block.oracle
    scores = score(predictions, changed)
    assert scores.exact_match == pytest.approx(3 / 12)
    assert scores.syntactic_accuracy == pytest.approx(9 / 12)
    assert scores.failures["assemble"] == 3
    assert scores.io_accuracy < scores.syntactic_accuracy
    assert sum(scores.failures.values()) == 12 - round(scores.io_accuracy * 12)
    assert 0 < scores.bleu < 100
    assert "| IO accuracy |" in scores.to_markdown()


def test_normalization_ignores_whitespace_and_comments():
    assert normalize("  LDP x1, x2, [x0, #8]   // pair\n\n") == normalize("ldp\tx1,x2,[x0,#8]")


def test_prediction_file_errors_are_clear(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a"}) + "\n")
    with pytest.raises(ValueError, match="needs 'id' and 'asm'"):
        read_predictions(str(path))
