"""The embedded CPU demo's parts: what ``drama-wm demo`` trains on, when it counts as solved, and how it shows the
learning curve (as a text table and a PNG) against a random policy. The command itself is in :mod:`drama_wm.cli`.

Nothing heavy is imported at module level (the command line imports this module for its ``--help``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from drama_wm.checks import positive_int

if TYPE_CHECKING:
    from drama_wm.driver import Drama

#: Real-step budget of ``drama-wm demo``; it stops earlier, as soon as an evaluation reaches DEMO_TARGET.
DEMO_STEPS = 10_000
DEMO_ENV = "CartPole-v1"
#: CartPole-v1 pays 1 per step for at most 500 steps; Gymnasium's registry counts a mean of 475 as solved.
DEMO_TARGET = 475.0
#: The demo evaluates DEMO_EVAL_EPISODES deterministic episodes every DEMO_EVAL_EVERY real steps.
DEMO_EVAL_EVERY = 500
DEMO_EVAL_EPISODES = 20


def format_return_table(returns: Sequence[float], steps: Sequence[int], n_blocks: int = 10, width: int = 40) -> str:
    """The learning curve as text: mean return per block of consecutive episodes, with a bar per block.

    Episodes are split into ``min(n_blocks, len(returns))`` blocks of near-equal size; bars span the range from
    min(0, lowest mean) to the highest mean in ``width`` characters.
    """
    if len(returns) != len(steps):
        raise ValueError(f"returns and steps must have the same length, got {len(returns)} and {len(steps)}")
    positive_int("n_blocks", n_blocks)
    positive_int("width", width)
    if not returns:
        return "no episode finished yet"
    count = len(returns)
    n = min(n_blocks, count)
    bounds = [round(i * count / n) for i in range(n + 1)]  # block i holds episodes bounds[i] .. bounds[i+1]-1
    blocks = list(itertools.pairwise(bounds))
    means = [sum(returns[a:b]) / (b - a) for a, b in blocks]
    low, high = min(0.0, *means), max(means)
    lines = [f"{'episodes':>11}  {'until step':>10}  {'mean return':>11}"]
    for (a, b), mean in zip(blocks, means, strict=True):
        filled = round(width * (mean - low) / (high - low)) if high > low else width
        lines.append(f"{f'{a + 1}-{b}':>11}  {steps[b - 1]:>10}  {mean:>11.1f}  {'#' * filled}")
    return "\n".join(lines)


def plot_returns(
    returns: Sequence[float], steps: Sequence[int], path: str | Path, baseline: float | None = None, title: str = ""
) -> Path:
    """Save episode returns against real steps (points, plus a 10-episode running mean) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if len(returns) != len(steps):
        raise ValueError(f"returns and steps must have the same length, got {len(returns)} and {len(steps)}")
    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)  # the Agg canvas attaches itself: no pyplot, no global backend state
    ax = figure.add_subplot()
    ax.plot(steps, returns, ".", alpha=0.35, label="episode return")
    window = 10
    if len(returns) >= window:
        running = [sum(returns[i - window + 1 : i + 1]) / window for i in range(window - 1, len(returns))]
        ax.plot(steps[window - 1 :], running, label=f"mean of the last {window} episodes")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="random policy")
    ax.set(xlabel="real environment steps", ylabel="return", title=title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    return path


def random_policy_returns(env_id: str, n_episodes: int, seed: int) -> list[float]:
    """Returns of ``n_episodes`` whole episodes of a uniformly random policy (the baseline the demo beats)."""
    from drama_wm.env_recipes import make_env
    from drama_wm.evaluation import evaluate_policy

    env = make_env(env_id, seed=seed)
    env.action_space.seed(seed)
    try:
        return evaluate_policy(lambda _: env.action_space.sample(), env, n_episodes, seed=seed).returns
    finally:
        env.close()


class EvaluateUntilSolved:
    """Learn-callback of the demo: every DEMO_EVAL_EVERY real steps, evaluate the policy; stop once it is solved."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.solved_at: tuple[int, float] | None = None  # (real steps, minutes)

    def __call__(self, agent: Drama) -> bool:
        if agent.num_timesteps % DEMO_EVAL_EVERY:
            return True
        mean = agent.evaluate(DEMO_EVAL_EPISODES, deterministic=True)["mean"]
        minutes = (time.perf_counter() - self.started) / 60
        from tqdm.auto import tqdm

        # through tqdm, so the line lands above the progress bar instead of inside it
        tqdm.write(f"step {agent.num_timesteps:>6}: evaluation mean {mean:5.1f} ({minutes:.1f} min)")
        if mean >= DEMO_TARGET:
            self.solved_at = (agent.num_timesteps, minutes)
            return False
        return True


__all__ = [
    "DEMO_ENV",
    "DEMO_EVAL_EPISODES",
    "DEMO_EVAL_EVERY",
    "DEMO_STEPS",
    "DEMO_TARGET",
    "EvaluateUntilSolved",
    "format_return_table",
    "plot_returns",
    "random_policy_returns",
]
