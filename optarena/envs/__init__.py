"""optarena environments, registered with gymnasium on import.

``import optarena.envs`` registers (:mod:`optarena.envs.registry`: one line per environment)

* ``optarena/TensorSchedule-v0`` -- MetaSchedule decisions of a TensorIR program (TVM).
* ``optarena/AArch64Peephole-v0`` -- peephole rewrites of an AArch64 basic block (llvm-mca cycles).
* ``optarena/AArch64PeepholeText-v0`` -- the same, stepping with a whole replacement block.
* ``optarena/LlvmPassOrder-v0`` -- LLVM pass ordering through CompilerGym (``optarena setup
  compiler-gym`` first).

Every environment implements one contract (:mod:`optarena.envs.contract`). Each registry line
also carries the kind's policy (:class:`~optarena.envs.registry.KindPolicy`): what reports,
verifiers and backends need of it, as data.
"""

import gymnasium

from optarena.envs.registry import ByArgument, EnvKind, Forced, KindPolicy, register

register(EnvKind(
    "tensor_schedule", "optarena/TensorSchedule-v0",
    "optarena.envs.tensor_schedule.env:TensorScheduleEnv", "workload", KindPolicy(
        baseline="metaschedule",  # stock MetaSchedule
        measures_time=ByArgument(argument="rpc", unset=True, otherwise=False),  # a farm times
        # outputs always checked against the reference, at the default tolerance or a stricter
        # one, and timed in full (no early stop, no adaptive repeats)
        verification=(Forced(key="measure.check", value=True),
                      Forced(key="measure.early_stop", value=None),
                      Forced(key="measure.spread", value=None),
                      Forced(key="measure.tolerance", value=1e-3, rule="at_most")),
        speed_anchors={"pytorch": "PyTorch eager", "openblas": "OpenBLAS"},
        roofline="roofline",  # tensor_schedule/roofline.py
        cost_model=ByArgument(argument="surrogate", cases={"True": True}, unset=False,
                              otherwise=False),  # the XGB surrogate
        improvement="the speedup over the unscheduled program", problems="tensor programs"),
    problem_check="optarena.envs.tensor_schedule.names:check_workloads"))
register(EnvKind(
    "aarch64_peephole", "optarena/AArch64Peephole-v0",
    "optarena.envs.aarch64_peephole.env:AArch64PeepholeEnv", "block", KindPolicy(
        baseline="greedy",  # apply every profitable rewrite
        problem_kwargs={"mcpu": "neoverse-n1", "iterations": 100},  # llvm-mca's model
        # the equivalence checker runs at least its default number of random states
        verification=(Forced(key="check_states", value=8, rule="at_least"),
                      # and proves, with at least the default time limit (prove.py)
                      Forced(key="prove", value=True),
                      Forced(key="proof_time_limit", value=0.05, rule="at_least")),
        improvement="the starting over the final llvm-mca cycles", problems="peephole blocks",
        cost_model=True),  # llvm-mca's cycles of the unverified block
    problem_check="optarena.envs.aarch64_peephole.space:check_blocks"))
register(EnvKind(
    "llvm_pass_order", "optarena/LlvmPassOrder-v0",
    "optarena.envs.llvm_pass_order.env:LlvmPassOrderEnv", "benchmark", KindPolicy(
        # the compiler's own pipeline: -Oz for code size and IR instructions (CompilerGym's
        # leaderboard), -O3 for run time and cycles
        baseline=ByArgument(argument="reward", cases={"ir_instructions": "anchor:-Oz",
                                                      "code_size": "anchor:-Oz"},
                            unset="anchor:-O3", otherwise="anchor:-O3"),
        measures_time=ByArgument(argument="reward", cases={"runtime": True}, unset=True,
                                 otherwise=False),  # only the runtime metric times programs
        problem_kwargs={"reward": "runtime", "target": "host", "mcpu": None,
                        "start": "unoptimized"},
        verification=(Forced(key="check", value=True),),  # every program with a main is run
        improvement="the unoptimized program's score over the optimized one's",
        problems="pass ordering"),
    problem_check="optarena.envs.llvm_pass_order.workload:check_benchmarks"))
gymnasium.register(id="optarena/AArch64PeepholeText-v0",
                   entry_point="optarena.envs.aarch64_peephole.env:AArch64PeepholeTextEnv")
