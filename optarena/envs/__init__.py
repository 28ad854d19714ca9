"""optarena environments, registered with gymnasium on import.

``import optarena.envs`` registers (:mod:`optarena.envs.registry`: one line per environment)

* ``optarena/TensorSchedule-v0`` -- MetaSchedule decisions of a TensorIR program (TVM).
* ``optarena/AArch64Peephole-v0`` -- peephole rewrites of an AArch64 basic block (llvm-mca cycles).
* ``optarena/AArch64PeepholeText-v0`` -- the same, stepping with a whole replacement block.
* ``optarena/LlvmPassOrder-v0`` -- LLVM pass ordering through CompilerGym (``optarena setup
  compiler-gym`` first).

Every environment implements one contract (:mod:`optarena.envs.contract`).
"""

import gymnasium

from optarena.envs.registry import EnvKind, register

register(EnvKind("tensor_schedule", "optarena/TensorSchedule-v0",
                 "optarena.envs.tensor_schedule.env:TensorScheduleEnv", "workload",
                 problem_check="optarena.envs.tensor_schedule.names:check_workloads"))
register(EnvKind("aarch64_peephole", "optarena/AArch64Peephole-v0",
                 "optarena.envs.aarch64_peephole.env:AArch64PeepholeEnv", "block",
                 problem_check="optarena.envs.aarch64_peephole.corpus:check_blocks"))
register(EnvKind("llvm_pass_order", "optarena/LlvmPassOrder-v0",
                 "optarena.envs.llvm_pass_order.env:LlvmPassOrderEnv", "benchmark",
                 problem_check="optarena.envs.llvm_pass_order.workload:check_benchmarks"))
gymnasium.register(id="optarena/AArch64PeepholeText-v0",
                   entry_point="optarena.envs.aarch64_peephole.env:AArch64PeepholeTextEnv")
