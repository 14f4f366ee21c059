"""The ``drama-wm`` command line: train, eval, dream and the embedded CPU demo.

    drama-wm demo                                   # CartPole learns on a 2-core CPU in minutes, nothing to set up
    drama-wm train --env ALE/Pong-v5 --preset xs    # paper settings, Atari 100k protocol
    drama-wm eval runs/Pong-v5-xs-0/checkpoint.pt --episodes 10
    drama-wm dream runs/Pong-v5-xs-0/checkpoint.pt --out dream.gif
    drama-wm sweep --env CartPole-v1 MinAtar/Breakout-v1 --seeds 0 1 2 --steps 50000 --out sweeps/a  # on Ray
    drama-wm report sweeps/a                        # rliable: IQM, CIs, probability of improvement, profiles

User errors (bad flags, bad values, missing files) print one line ``drama-wm: error: ...`` and exit with status 2.
Heavy imports (torch, the agent, matplotlib) happen inside the commands, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from drama_wm.demo import (
    DEMO_ENV,
    DEMO_EVAL_EPISODES,
    DEMO_EVAL_EVERY,
    DEMO_STEPS,
    DEMO_TARGET,
    EvaluateUntilSolved,
    format_return_table,
    plot_returns,
    random_policy_returns,
)
from drama_wm.names import BACKBONE_KINDS, LEARNER_KINDS, PRESETS, SAMPLER_KINDS
from drama_wm.overrides import apply_overrides, parse_overrides
from drama_wm.train_settings import (
    TRAIN_DEFAULTS,
    check_resume_matches,
    cpu_cost_warning,
    default_logdir,
    make_config,
)

if TYPE_CHECKING:
    from drama_wm.driver import Drama



# ------------------------------------------------------------------------------------------------------------------
# Argument parsing
def _version() -> str:
    """The installed package's version (without importing torch)."""
    from drama_wm import __version__

    return __version__


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``drama-wm train: error: <message> (see drama-wm train --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Appends each flag's default to its help (unless it is None or False) and keeps descriptions' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and not any(action.default is x for x in (None, False, argparse.SUPPRESS)):
            text += " (default: %(default)s)"
        return text


def _int_at_least(low: int, expected: str) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``low``; ``expected`` names the range in its error messages."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _device(text: str) -> str:
    """'auto' or anything torch.device accepts ('cpu', 'cuda', 'cuda:1', 'mps')."""
    if text == "auto":
        return text
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a torch device such as 'cpu' or 'cuda', got {text!r}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r} asked for, but CUDA is not available here: use 'cpu' or 'auto'")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The ``drama-wm`` parser with its subcommands."""
    parser = _Parser(
        prog="drama-wm",
        description="Drama (ICLR 2025): a Mamba-2 world model for sample-efficient model-based RL.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"drama-wm {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train an agent (paper Algorithm 1)",
        description="Train a Drama agent. Writes TensorBoard events, scalars.csv and checkpoint.pt to --logdir.\n"
        "SIGINT (Ctrl-C) or SIGTERM (kill, schedulers, docker stop) stops it after the current step: it writes\n"
        "checkpoint.pt and exits with status 128 + the signal's number (130 for SIGINT, 143 for SIGTERM);\n"
        "continue with --resume. A second signal aborts at once, keeping the previous checkpoint intact (same\n"
        "status). A finished run exits with 0, bad flags or files with 2.\n"
        "With --resume, --env, --preset, --sampler, --backbone, --learner, --seed and --set come from the\n"
        "checkpoint; any of them given must agree with it.",
        formatter_class=_Formatter,
    )
    train.add_argument(
        "--env",
        default=None,
        help="Gymnasium id, Atari game name (Atari 100k protocol), or module:EnvId to import module first "
        f"(default: {TRAIN_DEFAULTS['env']})",
    )
    train.add_argument(
        "--preset", choices=PRESETS, default=None, help=f"DramaConfig preset (default: {TRAIN_DEFAULTS['preset']})"
    )
    train.add_argument("--steps", type=_positive_int, default=100_000, metavar="N", help="total real environment steps")
    train.add_argument(
        "--sampler",
        choices=SAMPLER_KINDS,
        default=None,
        help="replay sampler: DFS (Sec. 2.4) or the uniform ablation (default: dfs)",
    )
    train.add_argument(
        "--backbone",
        choices=BACKBONE_KINDS,
        default=None,
        help="sequence model; another kind than the preset's Mamba-2 gets its own defaults at the preset's "
        "d_model, n_layers, dropout (and d_state for mamba) (default: mamba2)",
    )
    train.add_argument(
        "--learner",
        choices=LEARNER_KINDS,
        default=None,
        help="behaviour learner: the built-in actor-critic, or stable-baselines3 PPO (pip install 'drama-wm[sb3]') "
        "(default: actor-critic)",
    )
    train.add_argument(
        "--seed", type=int, default=None, help="seed of the env, networks, replay and dreams (default: 0)"
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any DramaConfig field, dotted for nested ones (dream_termination=sample, world_model.lr=0.002), applied "
        "after the flags above; repeat for several",
    )
    train.add_argument("--logdir", default=None, help="output folder (default: runs/<env-name>-<preset>-<seed>)")
    train.add_argument("--resume", action="store_true", help="continue LOGDIR/checkpoint.pt up to --steps total steps")
    train.add_argument("--device", type=_device, default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda'")
    train.add_argument(
        "--tf32",
        action="store_true",
        help="let float32 matmuls use TF32 tensor cores on CUDA (10-bit mantissa; no clear gain measured at XS)",
    )
    train.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=10_000,
        metavar="N",
        help="steps between checkpoints (0: at the end)",
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(run=_cmd_train)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a checkpoint",
        description="Play whole games with a saved agent; prints mean +- std of the returns and, for the 26\n"
        "Atari 100k games, the human-normalised score (paper Table 1 reference scores).",
        formatter_class=_Formatter,
    )
    evaluate.add_argument("checkpoint", help="path to a checkpoint.pt")
    evaluate.add_argument("--episodes", type=_positive_int, default=10, help="games to play")
    evaluate.add_argument("--deterministic", action="store_true", help="act with the policy's mode, not samples")
    evaluate.add_argument("--env", default=None, help="env id to evaluate in (default: the checkpoint's)")
    evaluate.add_argument("--device", type=_device, default="auto", help="'auto', 'cpu', 'cuda', ...")
    evaluate.set_defaults(run=_cmd_eval)

    dream = commands.add_parser(
        "dream",
        help="render imagined rollouts to a video",
        description="Decode the world model's imagination (paper Figs. 7-9): top row real frames (the context,\n"
        "then the real continuation, black where the buffer has none), bottom row the model (reconstructions of\n"
        "the context with a green border, then the dream with a red border); rollouts side by side.\n"
        "Needs a checkpoint of an image env saved with its replay buffer.",
        formatter_class=_Formatter,
    )
    dream.add_argument("checkpoint", help="path to a checkpoint.pt")
    dream.add_argument("--out", default="dream.gif", help="output video: .gif, or .mp4 (needs imageio-ffmpeg)")
    dream.add_argument("--rollouts", type=_positive_int, default=4, help="rollouts side by side")
    dream.add_argument("--context", type=_positive_int, default=8, help="real steps observed before dreaming")
    dream.add_argument("--horizon", type=_positive_int, default=32, help="dreamed steps")
    dream.add_argument("--seed", type=int, default=0, help="seed of the contexts, latent samples and actions")
    dream.add_argument("--fps", type=_positive_int, default=8, help="frames per second of the video")
    dream.add_argument("--deterministic", action="store_true", help="act with the policy's mode, not samples")
    dream.add_argument("--device", type=_device, default="auto", help="'auto', 'cpu', 'cuda', ...")
    dream.set_defaults(run=_cmd_dream)

    demo = commands.add_parser(
        "demo",
        help=f"watch Drama learn {DEMO_ENV} on the CPU in minutes",
        description=f"Train the cpu_demo preset on {DEMO_ENV} until it is solved: every {DEMO_EVAL_EVERY} real steps "
        f"the policy\nplays {DEMO_EVAL_EPISODES} deterministic episodes, and the demo stops once their mean return "
        f"reaches {DEMO_TARGET:g}\n(500 is the maximum). Prints the return curve and saves it as a PNG and a CSV, "
        "beside a random policy.\nNo download, nothing to configure.",
        formatter_class=_Formatter,
    )
    demo.add_argument(
        "--steps", type=_positive_int, default=DEMO_STEPS, metavar="N", help="most real environment steps to train"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the run")
    demo.add_argument("--out", default=None, help="output folder (default: runs/demo-<seed>-<date-time>)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(run=_cmd_demo)

    from drama_wm.sweep_cli import add_commands  # sweep and report (issue 15); light module, no torch

    add_commands(commands, _Parser, _Formatter, _positive_int, _non_negative_int)
    return parser


# ------------------------------------------------------------------------------------------------------------------
# Entry point
def main(argv: list[str] | None = None) -> int:
    """Run the ``drama-wm`` command line on ``argv`` (``sys.argv[1:]`` when None); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) and argparse errors (2, already printed on one line)
        return int(exit_.code or 0)
    import gymnasium as gym

    from drama_wm.health import SkippedUpdatesError

    try:
        return args.run(args)
    except (ValueError, TypeError, OSError, gym.error.Error, SkippedUpdatesError) as err:  # OSError: file systems
        print(f"drama-wm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # a second SIGINT/SIGTERM while stopping, or Ctrl-C in other commands
        print("drama-wm: interrupted", file=sys.stderr)
        return 128 + getattr(interrupt, "signum", signal.SIGINT)


# ------------------------------------------------------------------------------------------------------------------
# train
def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from drama_wm.driver import Drama

    if any(path == ("checkpoint_every",) for path, _ in parse_overrides(args.overrides)):  # also checks key=value
        raise ValueError("--set checkpoint_every: use --checkpoint-every N, the one setting a resumed run may change")
    # A process-wide torch switch, so it belongs to the application (this CLI), not to the library.
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    given = {name: getattr(args, name) for name in TRAIN_DEFAULTS if getattr(args, name) is not None}
    settings = {**TRAIN_DEFAULTS, **given}
    if args.logdir is not None:
        logdir = Path(args.logdir)
    else:
        logdir = default_logdir(settings["env"], settings["preset"], settings["seed"])
    check_output_dir(logdir, "--logdir")  # before any slow import or model construction
    path = logdir / "checkpoint.pt"
    if args.resume:
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        agent = load_agent(path, args.device, logdir=logdir)  # with the learner the checkpoint was trained with
        from drama_wm.checkpoint import abandoned_writes

        for partial in abandoned_writes(path):  # a run killed while writing its checkpoint left these
            partial.unlink(missing_ok=True)
        settings = check_resume_matches(agent, given, args.checkpoint_every, args.overrides)
        agent.config.checkpoint_every = args.checkpoint_every  # the one setting a resumed run may change
    else:
        if path.exists():
            raise ValueError(f"{path} exists: pass --resume to continue that run, or choose another --logdir")
        config = make_config(
            settings["preset"], settings["sampler"], settings["backbone"], args.checkpoint_every, settings["learner"]
        )
        config = apply_overrides(config, args.overrides)
        agent = Drama(settings["env"], config, seed=settings["seed"], device=args.device, logdir=logdir)
    args.env = settings["env"]
    if agent.observation_adapter is not None:
        print(f"adapting {agent.observation_adapter.describe()}")
    changed = "".join(f", {item}" for item in args.overrides)
    kinds = (agent.config.sampler.kind, agent.config.world_model.backbone.kind, agent.learner_kind or "custom")
    print(f"training {settings['env']} ({settings['preset'] or 'custom config'}, {', '.join(kinds)}{changed}) on "
          f"{agent.device}")
    start_steps = agent.num_timesteps
    remaining = max(0, args.steps - start_steps)
    if args.resume:
        print(f"resuming {path} at step {start_steps}: {remaining} steps to go")
    warning = cpu_cost_warning(settings["preset"], agent.device.type, remaining, agent.config.warmup_steps)
    if warning:
        print(warning, file=sys.stderr)
    started = time.perf_counter()
    with _GracefulStop() as stop:
        agent.learn(remaining, callback=stop, progress_bar=not args.no_progress)
    elapsed = time.perf_counter() - started
    if stop.signum is not None:
        name = signal.Signals(stop.signum).name
        print(f"stopped by {name} at step {agent.num_timesteps}; checkpoint: {path} (continue with --resume)")
        return 128 + stop.signum
    print(f"steps: {agent.num_timesteps} ({agent.num_timesteps - start_steps} this run, {elapsed:.1f} s)")
    print(f"episodes: {len(agent.episodes)}")
    if agent.episodes:
        recent = [e["return"] for e in agent.episodes[-5:]]
        mean = sum(recent) / len(recent)
        print(f"mean return of the last {len(recent)} episodes: {mean:.2f}")
        hns = atari_normalized_score(args.env, mean)
        if hns is not None:
            print(f"human-normalised score of the last {len(recent)} episodes: {100 * hns:.1f}%")
    print(f"checkpoint: {path}")
    return 0


def check_output_dir(path: str | Path, flag: str) -> Path:
    """``path`` as a Path if it is, or can be created as, a writable folder; else a ValueError naming ``flag``."""
    path = Path(path)
    for folder in (path, *path.parents):  # the nearest existing ancestor decides
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == path else f"cannot be created: {folder} is a file"
                raise ValueError(f"{flag} {path} {what}, not a folder: choose another {flag}")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ValueError(f"{flag} {path}: {folder} is not writable: choose another {flag}")
            break
    return path


class _StopAbort(KeyboardInterrupt):
    """A second stop signal: training is abandoned at once (``signum`` gives the exit status 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _GracefulStop:
    """Learn-callback that stops training cleanly on the first SIGINT (Ctrl-C) or SIGTERM (``learn()`` then writes
    its checkpoint); ``signum`` is the signal received (None while none was).

    A second signal raises :class:`_StopAbort` (a KeyboardInterrupt) at once, even inside a checkpoint write, which
    :func:`drama_wm.checkpoint.atomic_write` then abandons, leaving the previous checkpoint in place. Signal handlers
    can only be installed from the main thread; elsewhere both signals keep their default behaviour.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> _GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise _StopAbort(signum)
        self.signum = signum
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping after this step and saving a checkpoint (again to abort)", file=sys.stderr)

    def __call__(self, agent: Drama) -> bool:
        return self.signum is None


# ------------------------------------------------------------------------------------------------------------------
# eval
def atari_normalized_score(env: str | None, score: float) -> float | None:
    """Human-normalised score (fraction, 1.0 = human) if ``env`` is one of the 26 Atari 100k games, else None."""
    from drama_wm.envs.scores import human_normalized_score, is_atari_100k_game

    return human_normalized_score(env, score) if env is not None and is_atari_100k_game(env) else None


def load_agent(path: str | Path, device: str = "auto", logdir: str | Path | None = None) -> Drama:
    """Load a checkpoint with the learner it was trained with (its kind is stored; SB3's is imported on demand)."""
    from drama_wm.driver import Drama

    return Drama.load(path, device=device, logdir=logdir)


def _cmd_eval(args: argparse.Namespace) -> int:
    agent = load_agent(args.checkpoint, args.device)
    result = agent.evaluate(args.episodes, deterministic=args.deterministic, env=args.env)
    env = args.env if args.env is not None else agent.env_name
    returns = result["returns"]
    print(f"{env}: {len(returns)} episodes after {agent.num_timesteps} training steps")
    print(f"return: {result['mean']:.2f} +- {result['std']:.2f} (min {min(returns):.2f}, max {max(returns):.2f})")
    hns = atari_normalized_score(env, result["mean"])
    if hns is not None:
        print(f"human-normalised score: {100 * hns:.1f}%")
    return 0


# ------------------------------------------------------------------------------------------------------------------
# dream
def check_video_path(path: str | Path, new: bool = True) -> Path:
    """``path`` as a Path if a video can be written there (.gif always; .mp4 with imageio-ffmpeg; a writable folder;
    with ``new``, no file there yet), else ValueError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"the video must end in .gif or .mp4, got {str(path)!r}")
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ValueError("writing .mp4 needs imageio-ffmpeg (pip install imageio-ffmpeg); or write a .gif")
    if new and path.exists():
        raise ValueError(f"--out {path} exists: delete it or choose another --out")
    check_output_dir(path.parent, "--out")
    return path


def write_video(path: str | Path, frames: Any, fps: int) -> Path:
    """Write uint8 frames [T, H, W, 3] as a GIF (Pillow, looping) or an MP4 (imageio-ffmpeg)."""
    import imageio.v2
    import imageio.v3

    path = check_video_path(path, new=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.v3.imwrite(path, frames, plugin="pillow", duration=1000 / fps, loop=0)  # duration: ms per frame
    else:
        # macro_block_size=1: no rescaling to multiples of 16 (dream frames already have the even sides H.264 needs).
        imageio.v2.mimwrite(path, frames, format="FFMPEG", fps=fps, macro_block_size=1)
    return path


def _cmd_dream(args: argparse.Namespace) -> int:
    from drama_wm.dreams import dream_frames

    out = check_video_path(args.out)  # before the (slow) checkpoint load
    agent = load_agent(args.checkpoint, args.device)
    frames = dream_frames(
        agent, args.rollouts, args.context, args.horizon, seed=args.seed, deterministic=args.deterministic
    )
    write_video(out, frames, args.fps)
    print(f"{out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}, {args.rollouts} rollouts")
    return 0


# ------------------------------------------------------------------------------------------------------------------
# demo
def _cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from drama_wm.config import DramaConfig
    from drama_wm.driver import Drama

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out is not None else Path("runs") / f"demo-{args.seed}-{stamp}"
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not empty: choose another --out")
    check_output_dir(out, "--out")
    random_returns = random_policy_returns(DEMO_ENV, DEMO_EVAL_EPISODES, args.seed)
    baseline = float(np.mean(random_returns))
    print(f"Drama demo: {DEMO_ENV} on the CPU, at most {args.steps} real steps -> {out}")
    print(
        f"A return of 500 is the maximum (the pole stays up for the whole episode); {DEMO_TARGET:g} counts as solved. "
        f"A random policy scores {baseline:.1f}. The demo evaluates {DEMO_EVAL_EPISODES} episodes every "
        f"{DEMO_EVAL_EVERY} steps and stops once solved."
    )
    agent = Drama(DEMO_ENV, DramaConfig.cpu_demo(), seed=args.seed, device="cpu", logdir=out)
    started = time.perf_counter()
    until_solved = EvaluateUntilSolved(started)
    with _GracefulStop() as stop:
        agent.learn(args.steps, callback=lambda a: stop(a) and until_solved(a), progress_bar=not args.no_progress)
    minutes = (time.perf_counter() - started) / 60
    returns = [e["return"] for e in agent.episodes]
    steps = [int(e["step"]) for e in agent.episodes]
    print(f"\ntrained {agent.num_timesteps} steps in {minutes:.1f} min, {len(returns)} episodes; return curve:")
    print(format_return_table(returns, steps))

    csv_path = out / "returns.csv"
    with csv_path.open("w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["episode", "step", "return"])
        rows.writerows([i + 1, s, r] for i, (s, r) in enumerate(zip(steps, returns, strict=True)))
    png_path = plot_returns(returns, steps, out / "returns.png", baseline, f"Drama on {DEMO_ENV} (cpu_demo preset)")
    if until_solved.solved_at is not None:
        solved_steps, solved_minutes = until_solved.solved_at
        print(
            f"\nsolved: a mean return >= {DEMO_TARGET:g} over {DEMO_EVAL_EPISODES} episodes after {solved_steps} real "
            f"steps and {solved_minutes:.1f} min (random policy: {baseline:.1f}; maximum: 500)"
        )
    else:
        result = agent.evaluate(DEMO_EVAL_EPISODES, deterministic=True)
        print(
            f"\nnot solved within {agent.num_timesteps} steps: evaluation mean {result['mean']:.1f} "
            f"(target {DEMO_TARGET:g}, random policy {baseline:.1f}, maximum 500); try another --seed or more --steps"
        )
    print(f"\nreturn curve: {png_path}\nepisode returns: {csv_path}\ntraining scalars: {out / 'scalars.csv'}")
    print(f"checkpoint: {out / 'checkpoint.pt'} (try: drama-wm eval {out / 'checkpoint.pt'})")
    return 0


__all__ = [
    "DEMO_STEPS",
    "build_parser",
    "check_video_path",
    "default_logdir",
    "load_agent",
    "main",
    "make_config",
    "write_video",
]
