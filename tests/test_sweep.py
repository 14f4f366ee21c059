"""Sweeps (issue 15): --set overrides, resumable runs for Drama and the SB3 baselines, Ray retry and resume."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from dataclasses import fields, replace
from pathlib import Path

import gymnasium as gym
import pytest

from drama_wm import DramaConfig
from drama_wm.overrides import apply_overrides
from drama_wm.run_spec import RunSpec, expand
from drama_wm.sequence import MambaConfig, TransformerConfig
from drama_wm.sweep import load_results
from drama_wm.sweep_run import run_one

TESTS = Path(__file__).parent


def _spec(learner: str = "drama", env: str = "CartPole-v1", seed: int = 0, steps: int = 200) -> RunSpec:
    return RunSpec(env, seed, steps, learner=learner, preset="tiny", eval_every=100, eval_episodes=2,
                   checkpoint_every=50)


# ------------------------------------------------------------------------------------------------------------------
# --set
def test_overrides_set_nested_fields_with_their_types() -> None:
    config = apply_overrides(
        DramaConfig.tiny(),
        ["sampler.kind=uniform", "world_model.backbone=mamba", "batch_size=8", "world_model.lr=0.002",
         "checkpoint_replay=false", "world_model.encoder_channels=[4,8,8,8,8]"],
    )
    assert config.sampler.kind == "uniform"
    # the preset's backbone as a Mamba: Mamba's defaults at the preset's sizes (its Mamba-2 head_dim does not reach it)
    assert config.world_model.backbone == MambaConfig(d_model=128, n_layers=1, dropout=0.0, d_state=16)
    assert config.batch_size == 8 and config.world_model.lr == 0.002 and config.checkpoint_replay is False
    assert config.world_model.encoder_channels == (4, 8, 8, 8, 8)
    assert DramaConfig.tiny().sampler.kind == "dfs"  # the preset itself is untouched


def test_overrides_change_the_backbone_kind_before_its_fields() -> None:
    tiny = DramaConfig.tiny()
    config = apply_overrides(tiny, ["world_model.backbone.d_state=32"])
    assert config.world_model.backbone == replace(tiny.world_model.backbone, d_state=32)  # head_dim 32 kept
    for order in (1, -1):  # a kind change applies first, whatever the order of the assignments
        assignments = ["world_model.backbone.n_heads=4", "world_model.backbone=transformer"][::order]
        config = apply_overrides(tiny, assignments)
        assert config.world_model.backbone == TransformerConfig(d_model=128, n_layers=1, dropout=0.0, n_heads=4)
    same = apply_overrides(tiny, ["world_model.backbone=mamba2"])
    assert same == tiny  # its own kind: the preset's Mamba-2 settings stay
    with pytest.raises(ValueError, match=r"world_model.backbone has no field 'd_state'; known: d_model, dropout"):
        apply_overrides(tiny, ["world_model.backbone=gru", "world_model.backbone.d_state=8"])


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("world_model.backbone=lstm", "expected a kind of BackboneConfig, one of gru, mamba, mamba2, transformer"),
        ("world_model.d_model=64", "world_model has no field 'd_model'"),
        ("world_model.backbone.n_layers=0", r"Mamba2Config.n_layers must be an int >= 1, got 0"),
        ("sampler.knd=uniform", "sampler has no field 'knd'"),
        ("nonsense=1", "DramaConfig has no field 'nonsense'"),
        ("batch_size=eight", "expected a int"),
        ("batch_size=1.5", "expected a int"),
        ("checkpoint_replay=1", "expected true or false"),
        ("sampler=dfs", "is a whole config"),
        ("sampler.kind", "expects key=value"),
    ],
)
def test_overrides_reject_unknown_keys_and_bad_values(assignment: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_overrides(DramaConfig.tiny(), [assignment])
    with pytest.raises(ValueError, match=message):  # a sweep fails before any run starts
        RunSpec("CartPole-v1", 0, 10, overrides=(assignment,))


def test_expand_shares_baselines_across_drama_settings() -> None:
    a = expand(["CartPole-v1"], [0, 1], 100, ["drama", "sb3-ppo-modelfree"], overrides=["sampler.kind=uniform"])
    b = expand(["CartPole-v1"], [0, 1], 100, ["drama", "sb3-ppo-modelfree"])
    assert len(a) == len(b) == 4
    assert {s.name for s in a if s.learner != "drama"} == {s.name for s in b if s.learner != "drama"}
    assert {s.name for s in a if s.learner == "drama"}.isdisjoint({s.name for s in b if s.learner == "drama"})
    assert {s.setting for s in a} == {"drama[cpu_demo] sampler.kind=uniform", "sb3-ppo-modelfree"}


def test_expand_is_seed_major_so_a_cut_sweep_leaves_whole_seeds() -> None:
    specs = expand(["CartPole-v1", "Acrobot-v1"], [3, 1], 100, ["drama", "sb3-ppo-modelfree"])
    assert [(s.seed, s.env, s.learner) for s in specs] == [
        (3, "CartPole-v1", "drama"), (3, "CartPole-v1", "sb3-ppo-modelfree"),
        (3, "Acrobot-v1", "drama"), (3, "Acrobot-v1", "sb3-ppo-modelfree"),
        (1, "CartPole-v1", "drama"), (1, "CartPole-v1", "sb3-ppo-modelfree"),
        (1, "Acrobot-v1", "drama"), (1, "Acrobot-v1", "sb3-ppo-modelfree"),
    ]


def test_ablation_designs_and_seed_major_order() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ablation", TESTS.parent / "benchmarks" / "ablation.py")
    assert spec is not None and spec.loader is not None
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    kinds = [[o.split("=")[1] for o in s if not o.startswith("sampler.imagine")]
             for s in ablation.settings("cpu_demo", ["dfs", "uniform"], ["mamba2", "mamba"], "one-at-a-time")]
    assert kinds == [["dfs", "mamba2"], ["uniform", "mamba2"], ["dfs", "mamba"]]
    factorial = ablation.settings("cpu_demo", ["dfs", "uniform"], ["mamba2", "mamba"])
    assert len(factorial) == 4 and all("sampler.imagine_scale=4" in s for s in factorial)  # cpu_demo: 64 / 16
    with pytest.raises(ValueError, match="design must be one of"):
        ablation.settings("cpu_demo", ["dfs"], ["mamba2"], "latin-square")
    runs = ablation.ablation_specs(["CartPole-v1"], [3, 1], 100, "cpu_demo", factorial[:2], eval_every=50)
    assert [(r.seed, r.overrides[-1]) for r in runs] == [
        (3, "world_model.backbone=mamba2"), (3, "world_model.backbone=mamba"),
        (1, "world_model.backbone=mamba2"), (1, "world_model.backbone=mamba"),
    ]


def test_a_spec_pins_what_its_preset_meant(monkeypatch: pytest.MonkeyPatch) -> None:
    spec, baseline = _spec(), _spec("sb3-ppo-modelfree")
    assert len(spec.config_digest) == 12 and baseline.config_digest == "-"
    assert _spec().config_digest == spec.config_digest and RunSpec.from_dict(spec.to_dict()) == spec
    uniform = RunSpec("CartPole-v1", 0, 200, preset="tiny", overrides=("sampler.kind=uniform",), eval_every=100,
                      eval_episodes=2, checkpoint_every=50)
    assert uniform.config_digest != spec.config_digest
    # specs written before digests existed read as "unrecorded" (and so never pass for a spec made now)
    old = {k: v for k, v in spec.to_dict().items() if k != "config_digest"}
    assert RunSpec.from_dict(old).config_digest == "unrecorded" and RunSpec.from_dict(old) != spec
    # the preset changes (a new drama_wm): the same command now names another run, and the old spec cannot start
    tiny = DramaConfig.tiny
    monkeypatch.setattr(DramaConfig, "tiny", classmethod(lambda cls, **kw: tiny(**{"horizon": 7, **kw})))
    now = _spec()
    assert now.config_digest != spec.config_digest and now.name != spec.name
    assert now.resolved_config().horizon == 7
    with pytest.raises(ValueError, match=rf"made with another tiny preset \(config {spec.config_digest}, now "):
        spec.resolved_config()
    with pytest.raises(TypeError, match=r"unknown options \['config_digest'\]"):  # the digest is not a sweep option
        expand(["CartPole-v1"], [0], 10, config_digest="0123456789ab")


def test_an_option_added_at_its_neutral_value_changes_no_recorded_digest() -> None:
    """Experiment 1's Drama runs recorded their digest before DramaConfig.dream_termination existed; the same sweep
    command must still name the same runs, or a resumed sweep would start them all again."""
    recorded = Path(__file__).parents[1] / "benchmarks/results/sweeps/minatar100k/runs"
    path = recorded / "Asterix-v1-drama_cpu_demo_-s1-e6d9c49a/spec.json"
    old = RunSpec.from_dict(json.loads(path.read_text()))
    now = RunSpec.from_dict({**old.to_dict(), "config_digest": ""})  # the digest this drama_wm computes
    assert (now.config_digest, now.name) == (old.config_digest, path.parent.name)
    assert "dream_termination" not in DramaConfig.cpu_demo().digest_dict()
    assert set(DramaConfig.DIGEST_NEUTRAL) <= {f.name for f in fields(DramaConfig)}  # no misspelt field names
    sample = replace(now, overrides=("dream_termination=sample",), config_digest="")
    assert sample.config_digest != old.config_digest
    assert sample.resolved_config().digest_dict()["dream_termination"] == "sample"
    with pytest.raises(ValueError, match="dream_termination must be one of threshold, sample, got 'soft'"):
        replace(now, overrides=("dream_termination=soft",), config_digest="")


# ------------------------------------------------------------------------------------------------------------------
# One run: checkpoints, resume, result
def test_drama_run_resumes_from_its_checkpoint_exactly(tmp_path: Path) -> None:
    spec = _spec()
    straight = run_one(spec, tmp_path / "a")
    assert run_one(spec, tmp_path / "b", stop_at=120) is None  # interrupted: checkpoint at 100, curve up to 100
    folder = tmp_path / "b" / "runs" / spec.name
    assert (folder / "checkpoint.pt").exists() and not (folder / "result.json").exists()
    assert [p["step"] for p in json.loads((folder / "curve.json").read_text())["curve"]] == [100]
    resumed = run_one(spec, tmp_path / "b")
    assert straight is not None and resumed is not None
    assert straight["resumed_from"] == [] and resumed["resumed_from"] == [120]
    assert [p["step"] for p in resumed["curve"]] == [100, 200]
    # CPU runs continue exactly: the same evaluations and training episodes as the uninterrupted run
    assert resumed["curve"] == straight["curve"]
    assert resumed["train_episodes"] == straight["train_episodes"]
    assert not (folder / "checkpoint.pt").exists()  # a finished run keeps its result only
    assert run_one(spec, tmp_path / "b") == resumed  # finished runs are not run again


def test_a_drama_run_logs_its_training_scalars_in_its_folder_and_a_resume_appends(tmp_path: Path) -> None:
    spec = _spec()  # the tiny preset logs every 50 steps
    assert run_one(spec, tmp_path, stop_at=120) is None
    folder = tmp_path / "runs" / spec.name

    def rows() -> list[dict[str, str]]:
        with (folder / "scalars.csv").open() as file:
            return list(csv.DictReader(file))

    def steps_of(name: str) -> list[int]:
        return [int(r["step"]) for r in rows() if r["name"] == name]

    # warm-up ends at step 64 in the tiny preset: the learner's first scalars come at the first log after it
    assert steps_of("wm/loss") == [100] and steps_of("behaviour/imagined_reward") == [100]
    assert list(folder.glob("events.out.tfevents.*"))
    run_one(spec, tmp_path)
    assert steps_of("wm/loss") == [100, 150, 200]  # resumed at 120: appended, nothing rewritten
    assert (folder / "result.json").exists() and not (folder / "checkpoint.pt").exists()
    assert all(math.isfinite(float(r["value"])) for r in rows())


def test_a_killed_run_keeps_the_training_time_before_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drama_wm import sweep_run

    spec, saved = _spec(), []
    real_save = sweep_run._DramaRun.save

    def save_then_die_at_100(self: sweep_run._DramaRun, folder: Path) -> None:
        real_save(self, folder)
        saved.append(self.num_timesteps)
        if self.num_timesteps == 100:
            raise KeyboardInterrupt  # the process ends right after its checkpoint at step 100

    monkeypatch.setattr(sweep_run._DramaRun, "save", save_then_die_at_100)
    with pytest.raises(KeyboardInterrupt):
        run_one(spec, tmp_path)
    assert saved == [50, 100]
    first = json.loads((tmp_path / "runs" / spec.name / "curve.json").read_text())["train_seconds"]
    assert first > 0  # 100 steps of training, not the 0 the run started with
    monkeypatch.undo()
    result = run_one(spec, tmp_path)
    assert result is not None and result["resumed_from"] == [100] and result["train_seconds"] > first


@pytest.mark.parametrize("learner", ["sb3-ppo-modelfree", "sb3-dqn-modelfree"])
def test_baseline_runs_checkpoint_and_resume(tmp_path: Path, learner: str) -> None:
    pytest.importorskip("stable_baselines3")
    spec = _spec(learner, steps=300)
    assert run_one(spec, tmp_path, stop_at=160) is None
    folder = tmp_path / "runs" / spec.name
    assert (folder / "model.zip").exists()
    assert (folder / "replay.pkl").exists() == (learner == "sb3-dqn-modelfree")
    result = run_one(spec, tmp_path)
    assert result is not None
    assert result["resumed_from"] == [160]  # the step of the saved model, not 0
    assert result["steps"] == 300  # the same budget as Drama, not PPO's next multiple of n_steps
    assert [p["step"] for p in result["curve"]] == [100, 200, 300]
    assert all(len(p["returns"]) == 2 for p in result["curve"])


def test_run_folder_refuses_another_runs_spec(tmp_path: Path) -> None:
    spec = _spec(steps=100)
    folder = tmp_path / "runs" / spec.name
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps({**spec.to_dict(), "steps": 5}))
    with pytest.raises(ValueError, match=r"another run's spec\.json"):
        run_one(spec, tmp_path)


# ------------------------------------------------------------------------------------------------------------------
# Ray
@pytest.fixture
def ray_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Workers import tests/sweep_crash_env.py; the crash marker lives in tmp_path."""
    pytest.importorskip("ray")
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    marker = tmp_path / "crashed"
    monkeypatch.setenv("SWEEP_CRASH_MARKER", str(marker))
    return marker


def test_local_ray_sweep_runs_two_runs_then_skips_them(tmp_path: Path, ray_env: Path) -> None:
    import ray

    from drama_wm.sweep import run_sweep

    specs = [_spec("drama", steps=100), _spec("sb3-ppo-modelfree", steps=100)]
    results = run_sweep(specs, tmp_path / "sweep", num_cpus=1)
    assert [r["name"] for r in results] == [s.name for s in specs]
    assert all(r["steps"] == 100 and r["resumed_from"] == [] for r in results)
    assert sorted(r["name"] for r in load_results(tmp_path / "sweep")) == sorted(s.name for s in specs)
    assert not ray.is_initialized()  # the sweep shut down the Ray it started
    start = time.perf_counter()
    assert run_sweep(specs, tmp_path / "sweep", num_cpus=1) == results  # finished: read back, Ray not started
    assert time.perf_counter() - start < 2 and not ray.is_initialized()


def test_a_run_whose_worker_dies_is_retried_and_resumes(tmp_path: Path, ray_env: Path) -> None:
    import sweep_crash_env

    from drama_wm.sweep import run_sweep

    spec = RunSpec("sweep_crash_env:CrashOnceCartPole-v0", 0, 150, preset="tiny", eval_every=50, eval_episodes=1,
                   checkpoint_every=50)
    (result,) = run_sweep([spec], tmp_path / "sweep", num_cpus=1, max_retries=2)
    assert ray_env.exists()  # the first attempt's worker did die at its CRASH_AT-th step
    # The retry resumed from the checkpoint before the crash (step 50 < CRASH_AT = 90), it did not start again
    assert result["resumed_from"] == [50] and sweep_crash_env.CRASH_AT > 50
    assert result["steps"] == 150 and [p["step"] for p in result["curve"]] == [50, 100, 150]


def test_a_failing_run_does_not_stop_the_others_and_the_sweep_exits_1_naming_it(
    tmp_path: Path, ray_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drama_wm.cli import main

    out = tmp_path / "s"
    common = ["--seeds", "0", "--steps", "100", "--learner", "sb3-ppo-modelfree", "--eval-every", "50",
              "--eval-episodes", "1", "--checkpoint-every", "50", "--num-cpus", "1", "--out", str(out)]
    # BrokenCartPole raises at its third step on every attempt; with one CPU it runs first, then CartPole does
    broken = ["sweep", "--env", "sweep_crash_env:BrokenCartPole-v0", "CartPole-v1", *common, "--max-retries", "0"]
    assert main(broken) == 1
    err = capsys.readouterr().err
    assert f"2 runs into {out}: 0 finished (skipped), 0 to resume, 2 to start" in err
    assert "error: 1 of 2 runs failed after their retries" in err and "BrokenCartPole" in err
    assert "RuntimeError: step 3 is broken" in err
    (finished,) = load_results(out)  # the other run ran to the end
    assert finished["spec"]["env"] == "CartPole-v1" and finished["steps"] == 100
    assert main(["sweep", "--env", "CartPole-v1", *common]) == 0  # finished: skipped, Ray not started
    assert f"1 runs into {out}: 1 finished (skipped), 0 to resume, 0 to start" in capsys.readouterr().err


def test_expand_refuses_an_unknown_env_before_any_run_starts() -> None:
    with pytest.raises(ValueError, match=r"unknown environment 'CartPol-v1'.*did you mean 'CartPole-v1'"):
        expand(["CartPole-v1", "CartPol-v1"], [0], 100, ["drama"])
    with pytest.raises(gym.error.NameNotFound):
        expand(["CartPol-v1"], [0], 100, ["sb3-ppo-modelfree"])


def test_sweep_progress_tells_finished_started_and_waiting_runs_apart(tmp_path: Path) -> None:
    from drama_wm.sweep import _merged_specs, sweep_progress

    ppo = "sb3-ppo-modelfree"  # the fastest learner: the bookkeeping is the same for every learner
    done, cut, waiting = _spec(ppo, seed=0), _spec(ppo, seed=1), _spec(ppo, seed=2)
    (tmp_path / "sweep.json").write_text(json.dumps({"specs": _merged_specs(tmp_path / "sweep.json",
                                                                            [done, cut, waiting])}))
    run_one(done, tmp_path)
    assert run_one(cut, tmp_path, stop_at=120) is None  # stopped at step 120 with a checkpoint there
    rows = sweep_progress(tmp_path)
    assert [(r["name"], r["state"], r["step"]) for r in rows] == [
        (done.name, "finished", 200), (cut.name, "started", 120), (waiting.name, "not started", 0)
    ]
    assert rows[0]["train_seconds"] > 0 and rows[1]["train_seconds"] > 0 and rows[2]["train_seconds"] == 0
    pytest.importorskip("rliable")
    from drama_wm.report import write_report

    text = write_report(tmp_path, reps=50)["markdown"].read_text()
    assert f"Sweep in progress: 1 of 3 runs finished, 1 started ({cut.name} (step 120 of 200)), 1 not started" in text


def test_a_sweep_recorded_before_config_digests_still_finds_its_finished_runs() -> None:
    """The CartPole ablation's sweep.json and runs were written before RunSpec.config_digest existed: its runs must
    read as finished (under the names they were given then), not as 30 runs still to start."""
    from drama_wm.sweep import sweep_progress

    folder = Path(__file__).parents[1] / "benchmarks/results/sweeps/ablation_cartpole"
    rows = sweep_progress(folder)
    assert len(rows) == 30 and {r["state"] for r in rows} == {"finished"}
    assert {r["name"] for r in rows} == {p.name for p in (folder / "runs").iterdir()}
    spec = json.loads((folder / "runs" / rows[0]["name"] / "spec.json").read_text())
    assert "config_digest" not in spec and RunSpec.from_dict(spec).name == rows[0]["name"]
    with pytest.raises(ValueError, match="made with another cpu_demo preset"):  # found, but never resumed
        RunSpec.from_dict(spec).resolved_config()
    # a baseline spec from before digests keeps its old name too (hashed without the field), and stays another run
    # than the same baseline recorded now (config_digest "-")
    baseline = {k: v for k, v in _spec("sb3-ppo-modelfree").to_dict().items() if k != "config_digest"}
    old_name = hashlib.sha1(json.dumps(baseline, sort_keys=True).encode()).hexdigest()[:8]
    assert RunSpec.from_dict(baseline).name.endswith(f"-{old_name}")
    assert RunSpec.from_dict(baseline).name != _spec("sb3-ppo-modelfree").name


def test_sweep_json_keeps_the_runs_of_earlier_sweeps_into_the_same_folder(tmp_path):
    from drama_wm.sweep import _merged_specs

    first = [_spec(seed=0), _spec(seed=1)]
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"specs": _merged_specs(path, first)}))
    second = [_spec(seed=1), _spec(learner="sb3-ppo-modelfree", seed=0)]  # one run again, one new
    merged = [RunSpec.from_dict(d).name for d in _merged_specs(path, second)]
    assert merged == [first[0].name, second[0].name, second[1].name]
