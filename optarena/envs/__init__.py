"""optarena environments, registered with gymnasium on import.

gymnasium 1.x has no entry-point plugins: ``import optarena.envs`` registers

* ``optarena/TensorSchedule-v0`` -- MetaSchedule decisions of a TensorIR program (TVM).
* ``optarena/AArch64Peephole-v0`` -- peephole rewrites of an AArch64 basic block (llvm-mca cycles).
* ``optarena/AArch64PeepholeText-v0`` -- the same, stepping with a whole replacement block.
* ``optarena/LlvmPassOrder-v0`` -- LLVM pass ordering through CompilerGym (``optarena setup
  compiler-gym`` first).
"""

import gymnasium

gymnasium.register(
    id="optarena/TensorSchedule-v0",
    entry_point="optarena.envs.tensor_schedule.env:TensorScheduleEnv",
)
gymnasium.register(
    id="optarena/AArch64Peephole-v0",
    entry_point="optarena.envs.aarch64_peephole.env:AArch64PeepholeEnv",
)
gymnasium.register(
    id="optarena/AArch64PeepholeText-v0",
    entry_point="optarena.envs.aarch64_peephole.env:AArch64PeepholeTextEnv",
)
gymnasium.register(
    id="optarena/LlvmPassOrder-v0",
    entry_point="optarena.envs.llvm_pass_order.env:LlvmPassOrderEnv",
)
