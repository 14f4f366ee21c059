"""The drama-wm command line, dream rendering and the demo's text/plot helpers, run in-process with tiny settings."""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from drama_wm import Drama, DramaConfig
from drama_wm.checkpoint import load as load_checkpoint
from drama_wm.cli import atari_normalized_score, build_parser, load_agent, main
from drama_wm.demo import format_return_table, plot_returns, random_policy_returns
from drama_wm.dreams import BORDER, BORDER_COLOURS, TIMELINE, dream_frames, grid_shape
from drama_wm.sequence import GRUConfig
from drama_wm.train_settings import XS_CPU_SECONDS_PER_STEP, cpu_cost_warning, default_logdir, make_config

CATCH = "drama_wm/Catch-v0"


def train(env: str, logdir, steps: int, *extra: str) -> int:
    argv = ["train", "--env", env, "--preset", "tiny", "--steps", str(steps), "--logdir", str(logdir)]
    return main([*argv, "--no-progress", *extra])


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("cartpole")
    assert train("CartPole-v1", logdir, 60) == 0  # < tiny's 64 warm-up steps: no updates, seconds of work
    return logdir


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("catch")
    assert train(CATCH, logdir, 24) == 0  # untrained: dreams test layout, not quality
    return logdir


def assert_one_line_error(capsys, rc: int, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("drama-wm")
    assert ": error: " in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


# ------------------------------------------------------------------------------------------------------------------
# train / eval
def test_train_writes_checkpoint_and_scalars(cartpole_run):
    assert (cartpole_run / "scalars.csv").read_text().startswith("step,wall_time,name,value")
    state = load_checkpoint(cartpole_run / "checkpoint.pt")
    assert state["parts"]["progress"]["num_timesteps"] == 60
    assert state["meta"]["env_spec"] == "CartPole-v1" and state["meta"]["seed"] == 0
    assert state["meta"]["config"] == make_config("tiny", "dfs", "mamba2", 10_000).to_dict()


def test_resume_continues_from_saved_steps(cartpole_run, tmp_path, capsys):
    logdir = tmp_path / "run"
    shutil.copytree(cartpole_run, logdir)
    capsys.readouterr()
    assert train("CartPole-v1", logdir, 65, "--resume") == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "at step 60: 5 steps to go" in out
    assert "steps: 65 (5 this run" in out
    assert load_checkpoint(logdir / "checkpoint.pt")["parts"]["progress"]["num_timesteps"] == 65


def test_resume_rejects_flags_of_another_run(cartpole_run, tmp_path, capsys):
    logdir = tmp_path / "run"
    shutil.copytree(cartpole_run, logdir)
    rc = train("CartPole-v1", logdir, 70, "--resume", "--seed", "1", "--sampler", "uniform")
    assert_one_line_error(capsys, rc, "--seed 1 (checkpoint: 0)", "--preset/--sampler/--backbone")


def test_set_reaches_the_config_and_a_resume_must_agree_with_it(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert train("CartPole-v1", logdir, 40, "--set", "dream_termination=sample", "--set", "horizon=5") == 0
    assert "(tiny, dfs, mamba2, actor-critic, dream_termination=sample, horizon=5)" in capsys.readouterr().out
    config = DramaConfig.from_dict(load_checkpoint(logdir / "checkpoint.pt")["meta"]["config"])
    assert (config.dream_termination, config.horizon) == ("sample", 5)
    assert config == DramaConfig.tiny(dream_termination="sample", horizon=5, checkpoint_every=10_000)
    # a resume may repeat the --set it was started with (alone, or all of it with the preset flags), not change it
    resume = ["train", "--logdir", str(logdir), "--resume", "--no-progress", "--steps"]
    assert main([*resume, "44"]) == 0
    assert main([*resume, "46", "--set", "horizon=5"]) == 0
    assert train("CartPole-v1", logdir, 48, "--resume", "--set", "horizon=5", "--set", "dream_termination=sample") == 0
    assert load_checkpoint(logdir / "checkpoint.pt")["parts"]["progress"]["num_timesteps"] == 48
    rc = main([*resume, "52", "--set", "horizon=6"])
    assert_one_line_error(capsys, rc, "--set changes the checkpoint's configuration: horizon=6 (checkpoint: 5)")
    rc = main([*resume, "52", "--sampler", "dfs", "--set", "horizon=6"])  # other flags given: --set still checked
    assert_one_line_error(capsys, rc, "horizon=6 (checkpoint: 5)")
    rc = train("CartPole-v1", logdir, 52, "--resume", "--set", "horizon=5")  # --preset tiny without the sample draw
    assert_one_line_error(
        capsys, rc, "--preset/--sampler/--backbone/--set give another configuration than the checkpoint's: "
        "dream_termination='threshold' (checkpoint: 'sample')"
    )
    rc = main([*resume, "52", "--set", "checkpoint_every=5"])
    assert_one_line_error(capsys, rc, "--set checkpoint_every: use --checkpoint-every N")
    rc = main([*resume, "52", "--set", "horizon"])
    assert_one_line_error(capsys, rc, "--set expects key=value (e.g. sampler.kind=uniform), got 'horizon'")
    assert train("CartPole-v1", tmp_path / "uniform", 40, "--set", "sampler.kind=uniform") == 0
    assert "(tiny, uniform, mamba2, actor-critic, sampler.kind=uniform)" in capsys.readouterr().out  # the kinds run
    rc = train("CartPole-v1", tmp_path / "new", 40, "--set", "dream_termination=soft")
    assert_one_line_error(capsys, rc, "dream_termination must be one of threshold, sample, got 'soft'")
    rc = train("CartPole-v1", tmp_path / "new", 40, "--set", "no_such_field=1")
    assert_one_line_error(capsys, rc, "no_such_field")


def test_train_refuses_to_overwrite_a_run(cartpole_run, capsys):
    rc = train("CartPole-v1", cartpole_run, 70)
    assert_one_line_error(capsys, rc, "exists", "--resume")


def test_resume_without_checkpoint(tmp_path, capsys):
    rc = train("CartPole-v1", tmp_path, 70, "--resume")
    assert_one_line_error(capsys, rc, "no checkpoint at")


def test_eval_prints_mean_and_std(cartpole_run, capsys):
    capsys.readouterr()
    assert main(["eval", str(cartpole_run / "checkpoint.pt"), "--episodes", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "CartPole-v1: 2 episodes after 60 training steps" in out
    line = next(line for line in out.splitlines() if line.startswith("return: "))
    mean, std = (float(x) for x in line.split()[1:4:2])  # "return: MEAN +- STD (...)"
    assert mean > 0 and std >= 0
    assert "human-normalised" not in out  # CartPole is not an Atari 100k game


def test_make_config_applies_flags():
    config = make_config("tiny", "uniform", "gru", 7)
    assert config.sampler.kind == "uniform"
    assert config.checkpoint_every == 7
    # tiny's backbone as a GRU: the GRU's defaults at tiny's width, depth and dropout (no Mamba-2 head_dim)
    assert config.world_model.backbone == GRUConfig(d_model=128, n_layers=1, dropout=0.0)
    same = make_config("tiny", "dfs", "mamba2", 0)
    assert same.world_model == DramaConfig.tiny().world_model  # keeps Mamba-2's preset keywords
    assert make_config("s", "dfs", "mamba2", 0).world_model == DramaConfig.s().world_model


def test_default_logdir_and_atari_scores():
    assert str(default_logdir("ALE/Pong-v5", "xs", 3)) == "runs/Pong-v5-xs-3"
    assert str(default_logdir("drama_wm/Catch-v0", "tiny", 0)) == "runs/Catch-v0-tiny-0"
    assert atari_normalized_score("ALE/Pong-v5", 14.6) == pytest.approx(1.0)
    assert atari_normalized_score("Breakout", 1.7) == pytest.approx(0.0)
    assert atari_normalized_score("CartPole-v1", 100.0) is None
    assert atari_normalized_score(None, 1.0) is None


# ------------------------------------------------------------------------------------------------------------------
# dream
def test_dream_writes_gif_with_the_layout(catch_run, tmp_path, capsys):
    out = tmp_path / "dream.gif"
    argv = ["dream", str(catch_run / "checkpoint.pt"), "--out", str(out), "--rollouts", "3", "--context", "4"]
    assert main([*argv, "--horizon", "6", "--fps", "4", "--device", "cpu"]) == 0
    assert iio.immeta(out)["duration"] == 250  # ms per frame at 4 fps
    video = iio.imread(out, index=None)
    height, width = grid_shape(64, 64, 3)
    assert (height, width) == (2 * (64 + 2 * BORDER) + TIMELINE, 3 * (64 + 2 * BORDER))
    assert video.shape[:3] == (4 + 6, height, width)
    assert str(out) in capsys.readouterr().out


def test_dream_frames_layout_and_content(catch_run):
    agent = load_agent(catch_run / "checkpoint.pt", device="cpu")
    counts = agent.replay.imagine_counts.copy()
    rng_state = torch.get_rng_state()
    frames = dream_frames(agent, n_rollouts=2, context_length=4, horizon=5, seed=3)
    assert frames.dtype == np.uint8 and frames.shape == (9, *grid_shape(64, 64, 2), 3)
    np.testing.assert_array_equal(frames, dream_frames(agent, 2, 4, 5, seed=3))  # seeded
    # The agent's own random streams and DFS counters are untouched.
    assert torch.equal(torch.get_rng_state(), rng_state)
    np.testing.assert_array_equal(agent.replay.imagine_counts, counts)

    cell_h, cell_w = 64 + 2 * BORDER, 64 + 2 * BORDER
    stored = agent.replay.field("observation")[: len(agent.replay)]
    for r in range(2):
        left = r * cell_w

        def cell(t, row, left=left):
            return frames[t, row * cell_h : (row + 1) * cell_h, left : left + cell_w]

        # Top row over the context: consecutive real frames from the buffer.
        context = np.stack([cell(t, 0)[BORDER:-BORDER, BORDER:-BORDER] for t in range(4)])
        matches = [s for s in range(len(stored) - 3) if np.array_equal(stored[s : s + 4], context)]
        assert matches, "the context shown is not a window of the replay buffer"
        # Bottom row: green border over the context (reconstructions), red over the dream.
        for t in range(9):
            kind = "reconstruction" if t < 4 else "dream"
            assert tuple(cell(t, 1)[0, 0]) == BORDER_COLOURS[kind]
    # The timeline grows by at least one column per frame.
    filled = [(frames[t, -TIMELINE:] != 0).any(axis=(0, 2)).sum() for t in range(9)]
    assert all(a < b for a, b in itertools.pairwise(filled)) and filled[-1] == frames.shape[2]


def test_dream_errors(catch_run, cartpole_run, tmp_path, capsys):
    rc = main(["dream", str(cartpole_run / "checkpoint.pt"), "--out", str(tmp_path / "d.gif"), "--device", "cpu"])
    assert_one_line_error(capsys, rc, "image observations")
    rc = main(["dream", str(catch_run / "checkpoint.pt"), "--out", str(tmp_path / "d.avi")])
    assert_one_line_error(capsys, rc, ".gif or .mp4")
    # A checkpoint without replay data cannot start a dream.
    empty = tmp_path / "empty.pt"
    Drama(CATCH, DramaConfig.tiny(), seed=0, device="cpu").save(empty)
    rc = main(["dream", str(empty), "--out", str(tmp_path / "d.gif"), "--device", "cpu"])
    assert_one_line_error(capsys, rc, "replay buffer holds 0 steps", "checkpoint_replay=True")
    agent = load_agent(catch_run / "checkpoint.pt", device="cpu")
    with pytest.raises(ValueError, match=r"horizon must be an int >= 1, got 0 \(int\)"):
        dream_frames(agent, 1, 4, 0)


# ------------------------------------------------------------------------------------------------------------------
# bad input and help
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--preset", "xl"], "invalid choice: 'xl'"),
        (["train", "--steps", "0"], "expected a positive integer, got 0"),
        (["train", "--steps", "ten"], "expected a positive integer, got 'ten'"),
        (["train", "--sampler", "prioritised"], "--sampler"),
        (["train", "--backbone", "lstm"], "--backbone"),
        (["train", "--checkpoint-every", "-1"], "expected an integer >= 0"),
        (["train", "--device", "gpu0"], "torch device"),
        (["train", "--no-such-flag"], "unrecognized arguments"),
        (["eval"], "checkpoint"),
        (["eval", "missing.pt"], "no checkpoint at missing.pt"),
        (["dream", "missing.pt", "--rollouts", "0"], "expected a positive integer"),
        (["demo", "--steps", "-5"], "expected a positive integer"),
        (["fly"], "invalid choice: 'fly'"),
        ([], "required"),
    ],
)
def test_bad_flags_give_one_line_errors(argv, fragment, capsys):
    assert_one_line_error(capsys, main(argv), fragment)


def test_bad_env_gives_one_line_error(tmp_path, capsys):
    rc = train("NoSuchGame", tmp_path, 10)
    assert_one_line_error(capsys, rc, "NoSuchGame")


def test_missing_stable_baselines3_gives_install_hint(tmp_path, capsys, monkeypatch):
    pytest.importorskip("drama_wm.integrations.sb3")
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # import now fails as if not installed
    monkeypatch.delitem(sys.modules, "drama_wm.integrations.sb3")
    from drama_wm.learners import LearnerConfig

    monkeypatch.delitem(LearnerConfig._members, "sb3-ppo")  # as in a process that never imported it
    rc = train("CartPole-v1", tmp_path, 10, "--learner", "sb3-ppo")
    assert_one_line_error(capsys, rc, 'pip install "drama-wm[sb3]"')


FLAGS = {
    "train": [
        "--env",
        "--preset",
        "--steps",
        "--sampler",
        "--backbone",
        "--learner",
        "--seed",
        "--set",
        "--logdir",
        "--resume",
        "--device",
        "--checkpoint-every",
        "--no-progress",
    ],
    "eval": ["checkpoint", "--episodes", "--deterministic", "--env", "--device"],
    "dream": ["checkpoint", "--out", "--rollouts", "--context", "--horizon", "--seed", "--fps", "--device"],
    "demo": ["--steps", "--seed", "--out", "--no-progress"],
}


@pytest.mark.parametrize("command", sorted(FLAGS))
def test_help_documents_every_flag(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    start = text.find("positional arguments:") if "positional arguments:" in text else text.find("options:")
    body = " ".join(text[start:].split())  # the argument list, without argparse's line wrapping
    for flag in FLAGS[command]:
        assert flag in body
    # ...and every flag the parser knows, with its default where it has one.
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        for option in action.option_strings:
            assert option in body
        documented = isinstance(action.default, (int, str)) and action.default is not False
        if action.option_strings and documented and action.default != argparse.SUPPRESS:
            assert f"(default: {action.default})" in body


# ------------------------------------------------------------------------------------------------------------------
# demo helpers
def test_return_table_on_a_rising_curve():
    returns = [float(i) for i in range(1, 21)]  # 20 episodes, returns 1..20
    steps = [10 * i for i in range(1, 21)]
    lines = format_return_table(returns, steps, n_blocks=4, width=20).splitlines()
    assert len(lines) == 5  # header + 4 blocks of 5 episodes
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == ["1-5", "6-10", "11-15", "16-20"]
    assert [int(row[1]) for row in rows] == [50, 100, 150, 200]
    assert [float(row[2]) for row in rows] == [3.0, 8.0, 13.0, 18.0]
    bars = [len(row[3]) for row in rows]
    assert bars == sorted(bars) and bars[-1] == 20
    assert bars[0] == round(20 * 3 / 18)  # bars start at 0 for non-negative returns


def test_return_table_edge_cases():
    assert format_return_table([], []) == "no episode finished yet"
    lines = format_return_table([-1.0, -1.0, 1.0], [5, 9, 30], n_blocks=10).splitlines()
    assert len(lines) == 4  # fewer episodes than blocks: one per episode
    assert lines[1].split()[-1] == "-1.0"  # the lowest mean gets no bar
    with pytest.raises(ValueError, match="same length"):
        format_return_table([1.0], [])


def test_plot_returns_writes_png(tmp_path):
    path = plot_returns([1.0, 2.0, 5.0] * 5, list(range(15)), tmp_path / "curve.png", baseline=1.5, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_random_policy_baseline_is_cartpole_sized():
    returns = random_policy_returns("CartPole-v1", 5, seed=0)
    assert len(returns) == 5 and 8 <= np.mean(returns) <= 60
    assert returns == random_policy_returns("CartPole-v1", 5, seed=0)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--steps", "560", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    for name in ("returns.png", "returns.csv", "scalars.csv", "checkpoint.pt"):
        assert (out / name).is_file()
        assert str(out / name) in text
    assert "mean return" in text and "A random policy scores" in text and "500 is the maximum" in text
    assert "step    500: evaluation mean" in text  # one evaluation at 500 steps, then the budget ends
    assert "not solved within 560 steps" in text or "solved: a mean return >= 475" in text
    rows = (out / "returns.csv").read_text().splitlines()
    assert rows[0] == "episode,step,return" and len(rows) > 1


# ------------------------------------------------------------------------------------------------------------------
# issue 14: version, fast help, env ids, resume from the checkpoint's settings, file-system errors
def test_help_and_version_do_not_import_torch():
    import subprocess

    code = (
        "import sys, contextlib, io\n"
        "from drama_wm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['--help']) == 0 and main(['train', '--help']) == 0 and main(['--version']) == 0\n"
        "print('torch' in sys.modules, out.getvalue().splitlines()[-1])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from drama_wm import __version__

    assert done.stdout.strip() == f"False drama-wm {__version__}"


def test_unknown_env_names_close_matches(tmp_path, capsys):
    rc = train("CartPoel-v1", tmp_path / "run", 10)
    assert_one_line_error(capsys, rc, "unknown environment 'CartPoel-v1'", "did you mean 'CartPole-v1'")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_module_colon_env_id_imports_the_module(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_envs_14.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyEnvs/Short-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv',"
        " max_episode_steps=5)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert train("my_envs_14:MyEnvs/Short-v0", tmp_path / "run", 12) == 0
    assert "MyEnvs/Short-v0" in gym_registry_ids()
    rc = train("no_such_module_14:X-v0", tmp_path / "run2", 12)
    assert_one_line_error(capsys, rc, "cannot import 'no_such_module_14'")


def gym_registry_ids() -> set[str]:
    import gymnasium as gym

    return set(gym.registry)


def test_resume_takes_env_preset_and_learner_from_the_checkpoint(cartpole_run, tmp_path, capsys):
    logdir = tmp_path / "run"
    shutil.copytree(cartpole_run, logdir)
    capsys.readouterr()
    assert main(["train", "--logdir", str(logdir), "--steps", "62", "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "training CartPole-v1 (tiny, dfs, mamba2, actor-critic)" in out and "steps: 62 (2 this run" in out
    rc = main(["train", "--logdir", str(logdir), "--steps", "70", "--resume", "--env", "Acrobot-v1", "--preset", "xs"])
    assert_one_line_error(capsys, rc, "--env 'Acrobot-v1' (checkpoint: 'CartPole-v1')", "--preset/--sampler")


def test_file_system_errors_are_one_line_and_early(catch_run, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert_one_line_error(capsys, train("CartPole-v1", a_file, 10), "--logdir", "is a file")
    assert_one_line_error(capsys, train("CartPole-v1", a_file / "sub", 10), "cannot be created", "is a file")
    video = tmp_path / "d.gif"
    video.write_bytes(b"")
    rc = main(["dream", str(catch_run / "checkpoint.pt"), "--out", str(video)])
    assert_one_line_error(capsys, rc, "--out", "exists")
    rc = main(["dream", str(catch_run / "checkpoint.pt"), "--out", str(a_file / "d.gif")])
    assert_one_line_error(capsys, rc, "--out", "is a file")
    rc = main(["demo", "--out", str(a_file), "--no-progress"])
    assert_one_line_error(capsys, rc, "--out", "is a file")
    rc = main(["demo", "--out", str(catch_run), "--no-progress"])
    assert_one_line_error(capsys, rc, "--out", "not empty")


def test_training_a_gpu_preset_on_the_cpu_warns_with_the_projected_duration(tmp_path, capsys):
    warning = cpu_cost_warning("xs", "cpu", 100_000, 1032)
    hours = (100_000 - 1032) * XS_CPU_SECONDS_PER_STEP / 3600
    assert f"about {hours:,.0f} h" in warning and "--device cuda" in warning
    assert "at least" in cpu_cost_warning("s", "cpu", 2000, 1032)
    for quiet in (("xs", "cuda", 100_000, 1032), ("cpu_demo", "cpu", 100_000, 500), ("xs", "cpu", 0, 1032)):
        assert cpu_cost_warning(*quiet) is None
    logdir = str(tmp_path / "xs")
    flags = ["--preset", "xs", "--steps", "1", "--device", "cpu", "--logdir", logdir]
    return_code = main(["train", "--env", "CartPole-v1", *flags])
    assert return_code == 0 and "warning: the xs preset on a CPU costs about 49 s" in capsys.readouterr().err
