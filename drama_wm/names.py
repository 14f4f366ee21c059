"""The names the command line and sweep specs accept, in one torch-free place (so ``drama-wm --help`` answers at
once): each tuple lists the members of a registry that lives in a heavier module, and a test holds them equal.

- :data:`PRESETS`: the :class:`~drama_wm.config.DramaConfig` presets (:meth:`DramaConfig.preset`).
- :data:`SAMPLER_KINDS`: :class:`~drama_wm.replay.SamplerConfig` kinds.
- :data:`BACKBONE_KINDS`: :data:`drama_wm.sequence.KINDS`, the sequence models.
- :data:`LEARNER_KINDS`: :class:`~drama_wm.learners.LearnerConfig` kinds, the learners that learn in the dream.
- :data:`SWEEP_LEARNERS`: what a sweep run trains: Drama, or an SB3 baseline on the real env.
- :data:`DREAM_TERMINATIONS`: how a :class:`~drama_wm.DreamEnv` turns the predicted termination probability into
  ``terminated`` (``DramaConfig.dream_termination``).
"""

from __future__ import annotations

PRESETS: tuple[str, ...] = ("xs", "s", "tiny", "cpu_demo")
SAMPLER_KINDS: tuple[str, ...] = ("dfs", "uniform")
BACKBONE_KINDS: tuple[str, ...] = ("mamba2", "mamba", "gru", "transformer")
LEARNER_KINDS: tuple[str, ...] = ("actor-critic", "sb3-ppo")
SWEEP_LEARNERS: tuple[str, ...] = ("drama", "sb3-ppo-modelfree", "sb3-dqn-modelfree")
DREAM_TERMINATIONS: tuple[str, ...] = ("threshold", "sample")

__all__ = ["BACKBONE_KINDS", "DREAM_TERMINATIONS", "LEARNER_KINDS", "PRESETS", "SAMPLER_KINDS", "SWEEP_LEARNERS"]
