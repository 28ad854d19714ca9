"""optarena environments, registered with gymnasium on import.

gymnasium 1.x has no entry-point plugins: ``import optarena.envs`` registers

* ``optarena/TensorSchedule-v0`` -- MetaSchedule decisions of a TensorIR program (TVM).
"""

import gymnasium

gymnasium.register(
    id="optarena/TensorSchedule-v0",
    entry_point="optarena.envs.tensor_schedule.env:TensorScheduleEnv",
)
