"""The tensor-schedule environment: workload -> design space -> measurement -> env."""

from optarena.envs.tensor_schedule.env import TensorScheduleEnv
from optarena.envs.tensor_schedule.measure import MeasureConfig, MeasureResult, RPCConfig
from optarena.envs.tensor_schedule.space import DesignSpace, ScheduleState
from optarena.envs.tensor_schedule.workload import RC_WORKLOADS, Workload, get_workload

__all__ = [
    "RC_WORKLOADS",
    "DesignSpace",
    "MeasureConfig",
    "MeasureResult",
    "RPCConfig",
    "ScheduleState",
    "TensorScheduleEnv",
    "Workload",
    "get_workload",
]
