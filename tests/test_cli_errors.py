"""The command line as a user meets it: every config, file and name error is one line on stderr
and exit code 2, found before any environment is made or run process started, and nothing is
written; Ctrl-C during a race is one line saying how to resume; plain help and ``--version``."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from optarena.experiments import backends
from optarena.experiments.cli import main

ROOT = Path(__file__).parent.parent

RACE = """\
name: bad
environments:
  - env: aarch64_peephole
    workloads: [loads_stores/O1/dot4/0]
agents:
  - agent: greedy
budget: 4
"""


def _rejected(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command; it must exit with 2 and one line on stderr, which is returned."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


BAD_RACES = [  # (a line of RACE, what a config says instead, the error's one line)
    ("budget: 4", "budgte: 4", "race.yaml:7: unknown key 'budgte' (did you mean 'budget'?); valid "
     "keys: name, description, environments, agents, seeds, budget, seconds, checkpoints"),
    ("/0]", "/0", "race.yaml:5:7: not valid YAML: expected ',' or ']', but got ':' (while parsing "
     "a flow sequence begun at line 4)"),
    ("greedy\n", "greedy\n    confg: {}\n", "race.yaml:7: agents[0]: unknown key 'confg' (did you "
     "mean 'config'?); valid keys: agent, label, config, budget"),
    ("greedy", "alphazero", "race.yaml:6: agents[0].agent: unknown agent 'alphazero'; available: "
     "evolutionary,"),
    ("greedy\n", "greedy\n    config: {max_stall: 2}\n", "race.yaml:7: agents[0].config: agent "
     "'greedy' has no setting 'max_stall'; its settings: min_gain, max_stalls"),
    ("greedy\n", "llm-mcts\n    config: {llm: {base_ur: x}}\n", "race.yaml:7: agents[0].config: "
     "agent 'llm-mcts': LLMConfig base_ur: Extra inputs are not permitted"),
    ("peephole", "", "race.yaml:3: environments[0].env: unknown env 'aarch64_'; available: "
     "aarch64_peephole, llvm_pass_order, tensor_schedule"),
    ("dot4/0", "dot4/9", "race.yaml:4: environments[0].workloads: unknown block(s) "
     "['loads_stores/O1/dot4/9']"),
    ("env: aarch64_peephole\n    workloads: [loads_stores/O1/dot4/0]",
     "env: tensor_schedule\n    workloads: [matmul-64, matmool-64]",
     "race.yaml:4: environments[0].workloads: unknown workload 'matmool-64'. Available: "
     "matmul-128,"),
    ("env: aarch64_peephole\n    workloads: [loads_stores/O1/dot4/0]",
     "env: llvm_pass_order\n    workloads: ['suite:matmull']",
     "race.yaml:4: environments[0].workloads: unknown suite program 'matmull'; available:"),
    ("dot4/0]", "dot4/0]\n    kwargs: {rules: fast}", "race.yaml:4: environments[0].workloads: "
     "unknown rules 'fast': 'load-store', 'deep' or a list of pair, fold_after"),
    ("budget: 4", "budget: four", "race.yaml:7: budget: Input should be a valid integer, unable to "
     "parse string as an integer (got 'four')"),
    ("aarch64_peephole\n    workloads: [loads_stores/O1/dot4/0]\nagents:\n  - agent: greedy",
     "tensor_schedule\n    workloads: [matmul-64]\nagents:\n  - agent: mcts",
     "race.yaml:6: agents[0].agent: 'mcts' plans on a cost model and tensor_schedule has none "
     "with the kwargs given: set surrogate: true in its kwargs or race 'mcts-measured', which "
     "measures every node"),
    ("aarch64_peephole\n    workloads: [loads_stores/O1/dot4/0]\nagents:\n  - agent: greedy",
     "llvm_pass_order\n    workloads: ['suite:crc32']\nagents:\n  - agent: evolutionary-cost-model",
     "race.yaml:6: agents[0].agent: 'evolutionary-cost-model' plans on a cost model and "
     "llvm_pass_order has none with the kwargs given\n"),
]


@pytest.mark.parametrize("line,instead,expected", BAD_RACES)
def test_a_bad_race_config_is_one_line_and_writes_nothing(line, instead, expected, tmp_path,
                                                          capsys):
    assert line in RACE
    (tmp_path / "race.yaml").write_text(RACE.replace(line, instead))
    err = _rejected(["compare", "--config", str(tmp_path / "race.yaml"), "--out",
                     str(tmp_path / "out")], capsys)
    assert err.startswith(f"optarena compare: {tmp_path}/{expected}"), err
    assert not (tmp_path / "out").exists()


def test_a_missing_or_shapeless_config_is_one_line(tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")]
    assert f"{tmp_path}/missing.yaml: no such file" in _rejected(
        ["compare", "--config", str(tmp_path / "missing.yaml"), *out], capsys)
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    assert "list.yaml: a config is a mapping of keys to values, not a list" in _rejected(
        ["compare", "--config", str(tmp_path / "list.yaml"), *out], capsys)
    assert not (tmp_path / "out").exists()


def test_bad_command_line_selections_are_one_line(tmp_path, capsys):
    config = tmp_path / "race.yaml"
    config.write_text(RACE)
    out = ["--config", str(config), "--out", str(tmp_path / "out")]
    assert "--seeds: comma-separated integers" in _rejected(["compare", *out, "--seeds", "a"],
                                                            capsys)
    assert "--agents: no agent labelled mcts" in _rejected(["compare", *out, "--agents", "mcts"],
                                                           capsys)
    assert "--budget: Input should be greater than or equal to 1 (got 0)" in _rejected(
        ["compare", *out, "--budget", "0"], capsys)
    assert not (tmp_path / "out").exists()
    assert "no results.jsonl" in _rejected(["report", str(tmp_path / "out")], capsys)
    assert "no such file or directory" in _rejected(
        ["peephole", "build-corpus", str(tmp_path / "none.c"), "--out", str(tmp_path / "c")],
        capsys)


def test_tune_and_train_configs_are_checked_the_same_way(tmp_path, capsys):
    tune = tmp_path / "tune.yaml"
    tune.write_text("env: aarch64_peephole\nworkload: loads_stores/O1/dot4/0\nagent: mctz\n")
    assert "tune.yaml:3: agent: unknown agent 'mctz'" in _rejected(
        ["tune", "--config", str(tune)], capsys)
    planner = tmp_path / "planner.yaml"
    planner.write_text("env: tensor_schedule\nworkload: matmul-64\nagent: puct\n")
    assert "planner.yaml:3: agent: 'puct' plans on a cost model and tensor_schedule has none" in \
        _rejected(["tune", "--config", str(planner)], capsys)
    assert "--workload: unknown block(s) ['nope']" in _rejected(
        ["tune", "--config", str(tune), "--agent", "greedy", "--workload", "nope"], capsys)
    train = tmp_path / "train.yaml"
    train.write_text("split: peephole-csmith/v1\nppo: {n_step: 8}\n")
    assert "train.yaml:2: ppo: unknown key 'n_step' (did you mean 'n_steps'?)" in _rejected(
        ["train", "--config", str(train), "--out", str(tmp_path / "out")], capsys)
    assert not (tmp_path / "out").exists()


def test_tune_exports_where_the_readme_says(tmp_path, monkeypatch, capsys):
    shipped = yaml.safe_load((ROOT / "configs" / "tune.yaml").read_text())
    assert f"`{shipped['export_dir']}/seed0/`" in (ROOT / "README.md").read_text()
    config = tmp_path / "tune.yaml"
    config.write_text(f"env: aarch64_peephole\nworkload: loads_stores/O1/dot4/0\nagent: greedy\n"
                      f"budget: 4\nexport_dir: {shipped['export_dir']}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--config", str(config)]) == 0
    assert (tmp_path / shipped["export_dir"] / "seed0" / "state.json").is_file()


def test_ctrl_c_stops_a_race_with_one_line_saying_how_to_resume(tmp_path, monkeypatch, capsys):
    config = tmp_path / "race.yaml"
    config.write_text(RACE)
    started = []

    def interrupted(self: backends.LocalBackend) -> list[backends.Message]:
        raise KeyboardInterrupt

    monkeypatch.setattr(backends.LocalBackend, "submit", lambda self, spec, log: started.append(1))
    monkeypatch.setattr(backends.LocalBackend, "receive", interrupted)
    assert main(["compare", "--config", str(config), "--out", str(tmp_path / "out")]) == 130
    err = capsys.readouterr().err
    assert err == (f"optarena compare: interrupted; the finished runs are in "
                   f"{tmp_path}/out/results.jsonl: run the same command again to resume\n")
    assert started and not (tmp_path / "out" / "failures.jsonl").exists()


def test_run_processes_leave_ctrl_c_to_the_race():
    """A process the local backend starts ignores SIGINT (a terminal's Ctrl-C reaches the whole
    process group): the race ends its runs and prints one line, not one traceback per run."""
    probe = [sys.executable, "-c",
             "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"]
    with backends._sigint_ignored():
        ignored = subprocess.run(probe, capture_output=True, text=True, check=True).stdout
    assert ignored.strip() == "True"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip() == \
        "False"


def test_help_is_plain_text_and_there_is_a_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "compare --config FILE --out DIR" in out and "``" not in out and ":mod:" not in out
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("optarena 0.")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_reads_and_names_what_exists(path):
    from optarena.experiments.cli import TuneConfig
    from optarena.experiments.runs import CompareConfig
    from optarena.experiments.train import TrainConfig

    keys = yaml.safe_load(path.read_text())
    if "environments" in keys:
        CompareConfig.load(path).check_names()
    elif "split" in keys:
        TrainConfig.load(path)
    else:
        TuneConfig.model_validate(keys)
