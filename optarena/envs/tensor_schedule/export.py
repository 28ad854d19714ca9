"""Exporting a tuned state: TVMScript, a MetaSchedule JSON database, and the state itself.

The database (``database_workload.json`` + ``database_tuning_record.json``) is what MetaSchedule
itself writes during ``tune_tir``: ``tvm.s_tir.meta_schedule.tir_integration.compile_tir(database,
workload.mod, target)`` rebuilds the tuned program from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from optarena.envs.tensor_schedule.space import DesignSpace, ScheduleState


@dataclass(frozen=True)
class ExportedSchedule:
    tvmscript: Path
    database: Path
    state: Path


def export_schedule(
    space: DesignSpace, state: ScheduleState, latency_s: float, directory: str | Path
) -> ExportedSchedule:
    """Write ``best.py`` (TVMScript), the MetaSchedule database and ``state.json`` to a folder."""
    from tvm.s_tir import meta_schedule as ms

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    schedule = space.schedule(state)
    script = out / "best.py"
    script.write_text(schedule.mod.script())
    database = ms.database.JSONDatabase(
        path_workload=str(out / "database_workload.json"),
        path_tuning_record=str(out / "database_tuning_record.json"),
    )
    workload = database.commit_workload(space.workload.mod)
    database.commit_tuning_record(ms.database.TuningRecord(
        trace=schedule.trace,
        workload=workload,
        run_secs=[latency_s],
        target=space.target,
        args_info=ms.arg_info.ArgInfo.from_prim_func(space.workload.func),
    ))
    state_path = out / "state.json"
    state_path.write_text(json.dumps({
        "workload": space.workload.name,
        "workload_hash": space.workload.structural_hash,
        "target": str(space.target),
        "latency_s": latency_s,
        "state": state.to_json(),
    }, indent=2))
    return ExportedSchedule(script, out, state_path)
