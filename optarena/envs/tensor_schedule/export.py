"""Exporting a tuned state: its TVMScript and a MetaSchedule JSON database.

The database (``database_workload.json`` + ``database_tuning_record.json``) is what MetaSchedule
itself writes during ``tune_tir``: ``tvm.s_tir.meta_schedule.tir_integration.compile_tir(database,
workload.mod, target)`` rebuilds the tuned program from it.
"""

from __future__ import annotations

from pathlib import Path

from optarena.envs.tensor_schedule.space import DesignSpace, ScheduleState


def export_schedule(
    space: DesignSpace, state: ScheduleState, latency_s: float, directory: str | Path
) -> list[Path]:
    """Write ``best.py`` (TVMScript) and the MetaSchedule database (``database_workload.json``,
    ``database_tuning_record.json``) to a folder; returns the files."""
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
    return [script, out / "database_workload.json", out / "database_tuning_record.json"]
