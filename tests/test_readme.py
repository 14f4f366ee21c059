"""Every Python snippet of README.md runs as written, with its budgets scaled down by the table below."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

#: (text in the README, what the test runs instead): step budgets, episode counts and parallel dreams made small so
#: each snippet takes seconds; nothing else in the snippets is changed.
SCALE_DOWN = [
    ("DramaConfig.cpu_demo()", "DramaConfig.tiny(warmup_steps=16, sequence_length=8)"),
    ("learn(20_000", "learn(40"),
    ("learn(5_000)", "learn(40)"),
    ("learn(50_000)", "learn(64)"),
    ("CheckpointCallback(5_000", "CheckpointCallback(20"),
    ("evaluate(20,", "evaluate(2,"),
    ("eval_freq=500", "eval_freq=20"),
    ("n_eval_episodes=20", "n_eval_episodes=2"),
    ("n_eval_episodes=10", "n_eval_episodes=2"),
    ("n_eval_episodes=5", "n_eval_episodes=1"),
    ("num_envs=64", "num_envs=4"),
    ("gamma=0.985)", "gamma=0.985, n_steps=16, batch_size=32)"),
    (
        "DramaConfig.cpu_demo(learner=SB3PPOConfig())",
        "DramaConfig.tiny(warmup_steps=16, sequence_length=8, "
        'learner=SB3PPOConfig(num_envs=4, ppo_kwargs={"batch_size": 8, "n_epochs": 1}))',
    ),
]


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def scaled(code: str) -> str:
    for old, new in SCALE_DOWN:
        code = code.replace(old, new)
    return code


def test_readme_has_the_snippets_and_every_substitution_is_used():
    code = "\n".join(snippets())
    assert len(snippets()) == 3
    unused = [old for old, _ in SCALE_DOWN if old not in code]
    assert not unused, f"README no longer contains {unused}: update SCALE_DOWN"


def test_readme_set_up_commands_are_two_single_lines():
    text = README.read_text()
    setup = text[text.index("## Set-up") : text.index("## Use")]
    commands = [line.strip() for line in setup.splitlines() if line.startswith("    pip install")]
    assert commands[:2] == [
        'pip install "torch==2.13.0" && pip install -e . && drama-wm demo',
        'pip install "torch==2.13.0" && pip install -e ".[dev]" && python -m pytest -q',
    ]


def test_readme_links_point_to_files_of_the_repo():
    root = README.parent
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        if "://" not in target:
            assert (root / target).exists(), target
    for name in re.findall(r"`((?:drama_wm|examples|integrations|tests)/[\w/.]+)`", README.read_text()):
        assert (root / name).exists(), name


@pytest.mark.parametrize("index", range(3))
def test_readme_snippet_runs(index: int, tmp_path: Path):
    if index > 0:
        pytest.importorskip("stable_baselines3")
    code = scaled(snippets()[index])
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
