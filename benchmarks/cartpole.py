"""Sample efficiency and wall-clock on CartPole-v1: Drama (built-in actor-critic, or SB3 PPO in the dream) against
stable-baselines3 PPO on the real env (model-free, SB3's defaults), in one run on one machine. ``drama-uniform`` is
the built-in agent with uniform instead of DFS sampling of the replay.

    python benchmarks/cartpole.py --agents drama ppo --seeds 0 1 2 3 4 --eval-every 500 --stop-at-target
    python benchmarks/cartpole.py --agents drama-ppo --seeds 0 1 2 --steps 50000 --eval-every 1000 --target 400
    python benchmarks/cartpole.py --agents drama --set learner.num_envs=32 --max-train-seconds 420 --stop-at-target

``--set key=value`` changes the preset for the Drama agents (a variant's runs are stored under their own names);
``--max-train-seconds`` ends a run at its first evaluation past that much training (a cap for right-sizing sweeps:
a run cut there counts as not reaching the target).

Every ``--eval-every`` real steps the current policy plays ``--eval-episodes`` episodes deterministically on a fresh
env. Two clocks run per seed: ``train`` counts only learning (the time a user waits for an agent), ``total`` adds
the evaluations. "Reached" is the first evaluation whose mean is >= ``--target``.

Each (agent, seed) run is written to ``--out`` (default ``benchmarks/results/cartpole``) as JSON when it ends; a
run already there is skipped, so a long benchmark killed midway resumes where it stopped. The summary is rebuilt
from every file in ``--out`` that matches the settings, agents in the order given, seeds interleaved
(drama 0, ppo 0, drama 1, ...) so both share the machine's slow and fast spells alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine

from drama_wm import Drama, DramaConfig, SamplerConfig
from drama_wm.overrides import apply_overrides

ENV = "CartPole-v1"


class Clock:
    """Seconds spent training, apart from the seconds spent evaluating."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.evaluating = 0.0

    def evaluate(self, fn: Any) -> Any:
        begin = time.perf_counter()
        try:
            return fn()
        finally:
            self.evaluating += time.perf_counter() - begin

    def total(self) -> float:
        return time.perf_counter() - self.start

    def train(self) -> float:
        return self.total() - self.evaluating


def evaluate_sb3(model: Any, episodes: int, seed: int) -> float:
    env = gym.make(ENV)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run_drama(seed: int, args: argparse.Namespace, clock: Clock) -> list[dict[str, float]]:
    config = DramaConfig.cpu_demo()
    if args.agent == "drama-uniform":  # the preset with uniform instead of DFS start sampling (the paper's ablation)
        config = DramaConfig.cpu_demo(sampler=SamplerConfig(kind="uniform"))
    if args.agent == "drama-ppo":
        from drama_wm.integrations.sb3 import SB3PPOConfig

        config = DramaConfig.cpu_demo(learner=SB3PPOConfig())
    config = apply_overrides(config, args.set)
    agent = Drama(ENV, config, seed=seed, device=args.device)
    curve: list[dict[str, float]] = []
    while agent.num_timesteps < args.steps:
        agent.learn(min(args.eval_every, args.steps - agent.num_timesteps), progress_bar=False)
        mean = clock.evaluate(lambda: agent.evaluate(args.eval_episodes, deterministic=True)["mean"])
        if record(curve, agent.num_timesteps, mean, clock, seed, args):
            break
    return curve


def run_ppo(seed: int, args: argparse.Namespace, clock: Clock) -> list[dict[str, float]]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    curve: list[dict[str, float]] = []

    class EvaluateEvery(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every:
                return True
            mean = clock.evaluate(lambda: evaluate_sb3(self.model, args.eval_episodes, seed=10_000))
            return not record(curve, self.num_timesteps, mean, clock, seed, args)

    model = PPO("MlpPolicy", gym.make(ENV), seed=seed, device="cpu", verbose=0)
    model.learn(args.steps, callback=EvaluateEvery())
    return curve


def record(
    curve: list[dict[str, float]], step: int, mean: float, clock: Clock, seed: int, args: argparse.Namespace
) -> bool:
    """Append an evaluation; True when the run should stop here."""
    curve.append({"step": step, "mean": mean, "train_seconds": clock.train(), "total_seconds": clock.total()})
    print(f"{args.agent} seed {seed} step {step} eval {mean:.1f} train {clock.train():.0f} s", flush=True)
    out_of_time = args.max_train_seconds is not None and clock.train() >= args.max_train_seconds
    return out_of_time or (args.stop_at_target and mean >= args.target)


def summarise(runs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    for run in runs:
        hit = next((p for p in run["curve"] if p["mean"] >= target), None)
        run["reached_step"] = None if hit is None else hit["step"]
        run["reached_train_seconds"] = None if hit is None else hit["train_seconds"]
        run["best"] = max(p["mean"] for p in run["curve"])

    def median(key: str) -> float | None:
        values = [r[key] for r in runs]
        # A seed that never reached the target counts as slower than every seed that did.
        if sum(v is None for v in values) * 2 >= len(values):
            return None
        return statistics.median([float("inf") if v is None else v for v in values])

    return {
        "runs": len(runs),
        "reached": sum(r["reached_step"] is not None for r in runs),
        "median_step": median("reached_step"),
        "median_train_seconds": median("reached_train_seconds"),
    }


def report(args: argparse.Namespace, out: Path) -> str:
    lines = [
        f"{ENV}: steps and wall-clock to a mean return >= {args.target:g} ({args.eval_episodes} deterministic "
        f"episodes every {args.eval_every} real steps, budget {args.steps} steps)",
        "",
        f"- machine: {machine(torch.device(args.device))}",
        f"- command: `python benchmarks/cartpole.py --agents {' '.join(args.agents)} --seeds "
        f"{' '.join(map(str, args.seeds))} --steps {args.steps} --eval-every {args.eval_every} --target "
        f"{args.target:g}{' --stop-at-target' if args.stop_at_target else ''}"
        f"{f' --threads {args.threads}' if args.threads else ''}"
        f"{f' --max-train-seconds {args.max_train_seconds:g}' if args.max_train_seconds else ''}"
        f"{''.join(f' --set {s}' for s in args.set)}`",
        f"- settings: `cpu_demo` preset{' with ' + ', '.join(args.set) if args.set else ''} (Drama agents)",
        "- train = wall-clock of learning only; evaluations are excluded (total includes them)",
        "",
        "| agent | seed | reached at step | train time to target | best mean | steps run | total time |",
        "|---|---|---|---|---|---|---|",
    ]
    summaries, missing = {}, []
    for agent in args.agents:
        paths = [out / run_name(agent, seed, args) for seed in args.seeds]
        missing += [f"{agent} seed {seed}" for seed, path in zip(args.seeds, paths, strict=True) if not path.exists()]
        runs = [json.loads(path.read_text()) for path in paths if path.exists()]
        summaries[agent] = summarise(runs, args.target)
        for r in runs:
            reached = "not reached" if r["reached_step"] is None else f"{r['reached_step']:,}"
            seconds = "-" if r["reached_train_seconds"] is None else f"{r['reached_train_seconds']:.0f} s"
            last = r["curve"][-1]
            lines.append(
                f"| {agent} | {r['seed']} | {reached} | {seconds} | {r['best']:.1f} | {last['step']:,} | "
                f"{last['total_seconds']:.0f} s |"
            )
    lines += ["", "| agent | seeds reaching the target | median steps | median train time |", "|---|---|---|---|"]
    for agent, s in summaries.items():
        steps = "-" if s["median_step"] is None else f"{s['median_step']:,.0f}"
        seconds = "-" if s["median_train_seconds"] is None else f"{s['median_train_seconds']:.0f} s"
        lines.append(f"| {agent} | {s['reached']} of {s['runs']} run | {steps} | {seconds} |")
    if missing:
        lines += ["", f"Not run (yet): {', '.join(missing)}; the same command without --report-only runs them."]
    return "\n".join(lines) + "\n"


def run_name(agent: str, seed: int, args: argparse.Namespace) -> str:
    stop = "stop" if args.stop_at_target else "full"
    cap = f"_cap{args.max_train_seconds:g}s" if args.max_train_seconds else ""
    variant = "" if agent == "ppo" or not args.set else "_" + "_".join(s.replace("=", "-") for s in args.set)
    settings = f"steps{args.steps}_every{args.eval_every}_target{args.target:g}_{stop}{cap}"
    return f"{agent}{variant}_seed{seed}_{settings}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--agents", nargs="+", choices=["drama", "drama-uniform", "drama-ppo", "ppo"], default=["drama", "ppo"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=20_000, help="real-step budget per run")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stop-at-target", action="store_true", help="stop a run once its eval mean reaches --target")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cartpole", help="folder of per-run JSON files")
    parser.add_argument("--name", default=None, help="summary file name in benchmarks/results (default: derived)")
    parser.add_argument("--report-only", action="store_true", help="summarise the runs in --out, run nothing")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a cpu_demo field for the Drama agents, as drama-wm sweep --set (e.g. learner.num_envs=64)",
    )
    parser.add_argument(
        "--max-train-seconds",
        type=float,
        default=None,
        help="end a run at its first evaluation after this much training time (it counts as not reached)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in [] if args.report_only else args.seeds:
        for agent in args.agents:
            path = args.out / run_name(agent, seed, args)
            if path.exists():
                print(f"{path.name}: done already, skipped")
                continue
            args.agent = agent
            clock = Clock()
            curve = run_ppo(seed, args, clock) if agent == "ppo" else run_drama(seed, args, clock)
            result = {"agent": agent, "seed": seed, "curve": curve, "machine": machine(torch.device(args.device))}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result))
            tmp.replace(path)  # a killed run leaves no half-written result
    text = report(args, args.out)
    print(text)
    name = args.name or f"cartpole_{'-'.join(args.agents)}_target{args.target:g}.md"
    (RESULTS / name).write_text(text)


if __name__ == "__main__":
    main()
