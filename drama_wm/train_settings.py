"""What a ``drama-wm train`` run is, from its flags: the config (preset, sampler, backbone, learner, ``--set``), the
default logdir, the warning before a GPU-sized preset trains on a CPU, and the check that a resume's flags agree
with its checkpoint. Torch-free at import, like the command line that uses it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drama_wm.names import PRESETS
from drama_wm.overrides import apply_overrides

if TYPE_CHECKING:
    from drama_wm.config import DramaConfig
    from drama_wm.driver import Drama

#: Seconds per real step (train ratio 1, 2 torch threads) of the XS preset on our 2-core CPU, measured with
#: ``python benchmarks/throughput.py --device cpu`` on 2026-11-22 (BENCHMARKS.md, "Phases of a Drama step"); the S
#: preset (a larger encoder and state) costs more, so its warning uses this as a lower bound. Machines differ: an
#: order of magnitude, not a promise.
XS_CPU_SECONDS_PER_STEP = 48.7
#: Settings of a new ``drama-wm train`` run when their flags are not given (a resumed run takes the checkpoint's).
TRAIN_DEFAULTS: dict[str, Any] = {
    "env": "ALE/Pong-v5",
    "preset": "xs",
    "sampler": "dfs",
    "backbone": "mamba2",
    "learner": "actor-critic",
    "seed": 0,
}


def make_config(
    preset: str, sampler: str, backbone: str, checkpoint_every: int, learner: str = "actor-critic"
) -> DramaConfig:
    """The ``preset`` DramaConfig with the sampler kind, sequence backbone, checkpoint interval and learner kind set
    (a learner kind other than the preset's gets that kind's default config).

    A backbone kind other than the preset's (Mamba-2) is the preset's backbone as that kind
    (:meth:`~drama_wm.sequence.BackboneConfig.as_kind`): the kind's defaults at the preset's shared sizes.
    """
    from drama_wm.config import DramaConfig
    from drama_wm.learners import LearnerConfig

    config = DramaConfig.preset(preset)
    world_model = replace(config.world_model, backbone=config.world_model.backbone.as_kind(backbone))
    learner_config = config.learner if learner == config.learner.kind else LearnerConfig.member(learner)()
    return replace(
        config,
        world_model=world_model,
        learner=learner_config,
        sampler=replace(config.sampler, kind=sampler),
        checkpoint_every=checkpoint_every,
    )


def default_logdir(env: str, preset: str, seed: int) -> Path:
    """runs/<env-name>-<preset>-<seed>, the env name without its namespace: "ALE/Pong-v5" -> runs/Pong-v5-xs-0."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in env.rsplit("/", 1)[-1])
    return Path("runs") / f"{name}-{preset}-{seed}"


def cpu_cost_warning(preset: str | None, device_type: str, steps: int, warmup_steps: int) -> str | None:
    """A warning with the projected duration when a GPU-sized preset is about to train on a CPU, else None."""
    if device_type != "cpu" or preset not in ("xs", "s") or steps <= 0:
        return None
    hours = max(0, steps - warmup_steps) * XS_CPU_SECONDS_PER_STEP / 3600
    about = "about" if preset == "xs" else "at least (the xs preset's cost)"
    return (
        f"warning: the {preset} preset on a CPU costs {about} {XS_CPU_SECONDS_PER_STEP:.0f} s per real step once "
        f"training starts (measured on a 2-core CPU, BENCHMARKS.md): {steps} steps would take {about.split()[0]} "
        f"{hours:,.0f} h ({hours / 24:,.1f} days). Train it on a GPU (--device cuda), or use --preset cpu_demo or "
        "tiny for CPU-sized tasks."
    )


def preset_of(config: DramaConfig) -> str | None:
    """The preset whose configuration ``config`` is (with its sampler, backbone and checkpoint interval), or None."""
    for preset in PRESETS:
        kinds = (config.sampler.kind, config.world_model.backbone.kind, config.checkpoint_every, config.learner.kind)
        if make_config(preset, *kinds) == config:
            return preset
    return None


def config_differences(saved: DramaConfig, wanted: DramaConfig) -> list[str]:
    """The dotted fields where ``wanted`` differs from ``saved``, as "key=wanted (checkpoint: saved)"."""

    def flat(data: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(data, dict):
            return {prefix: data}
        return {k: v for key, value in data.items() for k, v in flat(value, f"{prefix}{key}.").items()}

    before, after = flat(saved.to_dict()), flat(wanted.to_dict())
    return [
        f"{key.rstrip('.')}={after.get(key)!r} (checkpoint: {before.get(key)!r})"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def check_resume_matches(
    agent: Drama, given: dict[str, Any], checkpoint_every: int, overrides: list[str]
) -> dict[str, Any]:
    """The settings of the checkpoint's run; flags given that would change the run are an error, not ignored."""
    config = agent.config
    saved: dict[str, Any] = {  # str values but the seed's (int or None)
        "env": agent.env_spec or agent.env_name,
        "preset": preset_of(config),
        "sampler": config.sampler.kind,
        "backbone": config.world_model.backbone.kind,
        "learner": agent.learner_kind or "custom",
        "seed": agent.seed,
    }
    differences = [
        f"--{flag} {given[flag]!r} (checkpoint: {saved[flag]!r})"
        for flag in ("env", "seed", "learner")
        if flag in given and given[flag] != saved[flag]
    ]
    saved_config = replace(config, checkpoint_every=checkpoint_every)
    if any(flag in given for flag in ("preset", "sampler", "backbone")):
        wanted = {flag: given.get(flag, saved[flag]) for flag in ("preset", "sampler", "backbone")}
        if wanted["preset"] is None:  # the checkpoint's config is no preset: only sampler/backbone can be compared
            if (wanted["sampler"], wanted["backbone"]) != (saved["sampler"], saved["backbone"]):
                differences.append("--sampler/--backbone give another configuration than the checkpoint's")
        else:
            mine = make_config(
                wanted["preset"], wanted["sampler"], wanted["backbone"], checkpoint_every, saved["learner"]
            )
            changed = config_differences(saved_config, apply_overrides(mine, overrides))
            if changed:
                differences.append(
                    "--preset/--sampler/--backbone/--set give another configuration than the checkpoint's: "
                    + ", ".join(changed)
                )
    changed = config_differences(saved_config, apply_overrides(saved_config, overrides))
    if changed:  # checked whatever other flags are given
        differences.append(f"--set changes the checkpoint's configuration: {', '.join(changed)}")
    if differences:
        raise ValueError("--resume needs the flags the run was started with: " + "; ".join(differences))
    return saved


__all__ = [
    "TRAIN_DEFAULTS",
    "XS_CPU_SECONDS_PER_STEP",
    "check_resume_matches",
    "config_differences",
    "cpu_cost_warning",
    "default_logdir",
    "make_config",
    "preset_of",
]
