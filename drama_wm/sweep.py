"""Sweeps: every (env, seed, learner, preset, overrides) as a resumable run (:mod:`drama_wm.sweep_run`), executed
as Ray tasks, and where a sweep folder stands.

Running the same sweep again skips runs with a ``result.json`` and resumes the others from their checkpoint; Ray's
``max_retries`` re-runs a task whose worker died, and the re-run resumes the same way. A run that still fails does not
stop the others. ``DIR/sweep.json`` records every run ever asked of the folder (for :func:`sweep_progress`).

Only :func:`run_sweep` needs Ray (``pip install drama-wm[sweep]``); this module imports it lazily.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from drama_wm.overrides import apply_overrides, parse_overrides
from drama_wm.run_spec import LEARNERS, RunSpec, expand, make_real_env
from drama_wm.sweep_run import checkpoint_files, read_json, run_one, write_json


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("sweeps need Ray: pip install drama-wm[sweep]") from None
    return ray


def _remote_run(spec_dict: dict[str, Any], out: str) -> dict[str, Any]:
    result = run_one(RunSpec.from_dict(spec_dict), out)
    assert result is not None
    return result


def _merged_specs(path: Path, specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
    """The specs recorded in ``path`` by earlier sweeps into the same folder, then ``specs`` (each run once): a
    sweep extended with new settings or seeds keeps the record of every run its folder holds."""
    new = [s.to_dict() for s in specs]
    names = {s.name for s in specs}
    earlier = read_json(path)["specs"] if path.exists() else []
    return [d for d in earlier if RunSpec.from_dict(d).name not in names] + new


class SweepFailed(RuntimeError):
    """Some runs failed after their retries; the others ran to the end. ``results`` holds the finished runs'
    results (by position in the specs, ``None`` where failed), ``failed`` maps a failed run's name to its error."""

    def __init__(self, out: Path, results: list[dict[str, Any] | None], failed: dict[str, str]) -> None:
        self.results, self.failed = results, failed
        lines = "\n".join(f"  {name}: {error}" for name, error in failed.items())
        super().__init__(
            f"{len(failed)} of {len(results)} runs failed after their retries (the others finished, results in "
            f"{out}):\n{lines}\nfix the cause and run the same sweep again: finished runs are skipped and the failed "
            "ones resume from their last checkpoint"
        )


def run_sweep(
    specs: Sequence[RunSpec],
    out: str | Path,
    address: str | None = None,
    num_cpus: int | None = None,
    max_retries: int = 3,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every spec as a Ray task (one CPU each) and return their results in the order of ``specs``.

    ``address=None`` starts Ray on this machine with ``num_cpus`` CPUs (all by default), so that many runs go at
    once; an address ("auto", "ray://head:10001") joins a cluster. Runs with a ``result.json`` are not started
    again. A task whose worker dies, or that raises, is retried up to ``max_retries`` times and resumes from its
    checkpoint. A run that still fails does not stop the others: once every run has ended, :class:`SweepFailed`
    names the failed ones. ``out`` must be on a file system that every node sees.
    """
    ray = _import_ray()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    pending_specs = []
    for i, spec in enumerate(specs):
        if run_state(out, spec) == "finished":
            results[i] = read_json(out / "runs" / spec.name / "result.json")
        else:
            pending_specs.append((i, spec))
    write_json(out / "sweep.json", {"specs": _merged_specs(out / "sweep.json", specs)})
    if pending_specs:
        started_here = not ray.is_initialized()
        if started_here:
            if address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR")
            else:
                ray.init(address=address, logging_level="ERROR")
        try:
            task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=True)(_remote_run)
            refs = {task.remote(spec.to_dict(), str(out)): i for i, spec in pending_specs}
            waiting = list(refs)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                i = refs[ready[0]]
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayError as err:  # the task's own error, or its worker's death, after retries
                    cause = getattr(err, "cause", None) or err
                    first_line = (str(cause).strip().splitlines() or [""])[0]
                    failed[specs[i].name] = f"{type(cause).__name__}: {first_line[:300]}"
                    continue
                results[i] = result
                if on_result is not None:
                    on_result(result)
        finally:
            if started_here:
                ray.shutdown()
    if failed:
        raise SweepFailed(out, [results.get(i) for i in range(len(specs))], failed)
    return [results[i] for i in range(len(specs))]


def load_results(out: str | Path) -> list[dict[str, Any]]:
    """Every finished run's result under ``out`` (``out/runs/*/result.json``)."""
    folder = Path(out) / "runs"
    if not folder.is_dir():
        raise FileNotFoundError(f"{out} holds no sweep (no runs/ folder): run drama-wm sweep --out {out} first")
    return [read_json(p) for p in sorted(folder.glob("*/result.json"))]


def run_state(out: str | Path, spec: RunSpec) -> str:
    """"finished" (it has a result.json), "started" (its folder exists: it resumes from its last checkpoint, if any)
    or "not started"."""
    folder = Path(out) / "runs" / spec.name
    if (folder / "result.json").exists():
        return "finished"
    return "started" if folder.is_dir() else "not started"


def sweep_progress(out: str | Path) -> list[dict[str, Any]]:
    """Where each run recorded in ``out/sweep.json`` stands, in its order: ``{"name", "setting", "env", "seed",
    "steps", "state", "step", "train_seconds"}`` with state "finished", "started" (``step``: the real steps of its
    last checkpoint, from which it resumes) or "not started"."""
    out = Path(out)
    if not (out / "sweep.json").exists():
        raise FileNotFoundError(f"{out} holds no sweep.json: run drama-wm sweep --out {out} first")
    rows = []
    for d in read_json(out / "sweep.json")["specs"]:
        spec = RunSpec.from_dict(d)
        folder = out / "runs" / spec.name
        row: dict[str, Any] = {"name": spec.name, "setting": spec.setting, "env": spec.env, "seed": spec.seed,
                               "steps": spec.steps, "state": run_state(out, spec), "step": 0, "train_seconds": 0.0}
        if row["state"] == "finished":
            result = read_json(folder / "result.json")
            row.update(step=result["steps"], train_seconds=result["train_seconds"])
        elif row["state"] == "started":
            if (folder / "curve.json").exists() and checkpoint_files(folder):
                progress = read_json(folder / "curve.json")
                # curve.json files written before checkpoint_step existed: the last evaluation, at most the checkpoint
                step = progress.get("checkpoint_step") or max((p["step"] for p in progress["curve"]), default=0)
                row.update(step=step, train_seconds=progress["train_seconds"])
        rows.append(row)
    return rows


def remove_run(out: str | Path, spec: RunSpec) -> None:
    """Delete a run's folder (to run it again from scratch)."""
    shutil.rmtree(Path(out) / "runs" / spec.name, ignore_errors=True)


__all__ = [
    "LEARNERS",
    "RunSpec",
    "SweepFailed",
    "apply_overrides",
    "expand",
    "load_results",
    "make_real_env",
    "parse_overrides",
    "remove_run",
    "run_one",
    "run_state",
    "run_sweep",
    "sweep_progress",
]
