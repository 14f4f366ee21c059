"""The built-in behaviour learner: DreamerV3-style actor-critic learning in DreamEnv (paper Sec. 2.3, Table 8).

Read top to bottom:
1. ``learn`` resets the dream (b_img start contexts drawn by DFS) and rolls the actor for ``horizon`` imagined steps
   through DreamEnv's torch mode, the same imagination path any other learner uses.
2. lambda-returns with gamma 0.985, lambda 0.95 and continuation 1 - terminated bootstrap from the critic.
3. Returns are normalised by S = EMA(0.99) of their 95th minus 5th percentile, floored at 1 (DreamerV3).
4. Actor: REINFORCE on the normalised advantage plus 3e-4 entropy. Critic: symlog two-hot regression on the returns,
   regularised towards a slow EMA (0.98) copy of itself.
Losses at steps after an imagined termination are masked by the running product of continuations (DreamerV3): the
dream keeps going past a predicted end (DreamEnv's DISABLED autoreset), but nothing after it is learned from.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn

from drama_wm.config_io import from_dict, to_dict
from drama_wm.distributions import SymlogTwoHot
from drama_wm.dream_env import DreamEnv
from drama_wm.layers import mlp
from drama_wm.learners.base import LearnerConfig
from drama_wm.optim import apply_gradients


@dataclass
class ActorCriticConfig(LearnerConfig, kind="actor-critic"):
    """Paper Table 8 (and REFERENCE.md) defaults."""

    num_envs: int = 1024  #: b_img, parallel dreams per update
    actor_hidden: int = 256
    actor_layers: int = 2  #: the paper's 2 (the authors' code used 3)
    critic_hidden: int = 512
    critic_layers: int = 2
    gamma: float = 0.985
    lambda_: float = 0.95
    entropy_coef: float = 3e-4
    return_scale_decay: float = 0.99  #: EMA decay of the 5-95 percentile range S
    slow_critic_decay: float = 0.98
    slow_critic_reg: float = 1.0  #: weight of the pull towards the slow critic's prediction
    lr: float = 4e-5
    eps: float = 1e-5
    grad_clip: float = 100.0
    value_bins: int = 255

    @classmethod
    def tiny(cls, **overrides: Any) -> ActorCriticConfig:
        """Small, fast-learning settings for tests and CPU demos."""
        base = {"num_envs": 64, "actor_hidden": 64, "critic_hidden": 64, "lr": 3e-4}
        return cls(**{**base, **overrides})

    def make(self) -> ActorCritic:
        return ActorCritic(self)


def lambda_returns(
    reward: torch.Tensor, value: torch.Tensor, cont: torch.Tensor, gamma: float, lambda_: float
) -> torch.Tensor:
    """TD(lambda) returns R_t = r_t + gamma c_t ((1 - lambda) V_{t+1} + lambda R_{t+1}), R_H = V_H.

    Shapes: reward, cont [H, B]; value [H + 1, B] -> returns [H, B].
    """
    horizon = reward.shape[0]
    if value.shape[0] != horizon + 1 or cont.shape != reward.shape:
        raise ValueError(
            f"expected reward/cont [H, B] and value [H+1, B], got {reward.shape}, {cont.shape}, {value.shape}"
        )
    out = torch.empty_like(reward)
    next_return = value[-1]
    for t in reversed(range(horizon)):
        next_return = reward[t] + gamma * cont[t] * ((1 - lambda_) * value[t + 1] + lambda_ * next_return)
        out[t] = next_return
    return out


class ActorCritic:
    """Actor and critic on world-model features; implements :class:`drama_wm.learners.BehaviourLearner`."""

    def __init__(self, config: ActorCriticConfig | None = None) -> None:
        self.config = config or ActorCriticConfig()
        self.dream_options = {
            "num_envs": self.config.num_envs,
            "array_type": "torch",
            "observation": "latent",
            "autoreset_mode": AutoresetMode.DISABLED,
            # Actions are drawn from the actor's own categorical over n_actions: always valid, so skip the check
            # (its read-back to the host would stall a GPU every step).
            "check_actions": False,
        }
        self.two_hot = SymlogTwoHot(self.config.value_bins)
        self.actor: nn.Module | None = None

    def bind(self, dream: DreamEnv) -> None:
        """Build (first call) or re-attach (later calls) the networks for ``dream``'s spaces and device."""
        if dream.array_type != "torch" or dream.metadata["autoreset_mode"] != AutoresetMode.DISABLED:
            raise ValueError(
                "ActorCritic needs a DreamEnv built with its dream_options (torch arrays, DISABLED autoreset)"
            )
        feature_space, action_space = dream.single_observation_space, dream.single_action_space
        shape = feature_space.shape
        if not isinstance(action_space, gym.spaces.Discrete) or shape is None or len(shape) != 1:
            raise TypeError(
                f"ActorCritic needs flat features and Discrete actions, got {feature_space}, {action_space}"
            )
        self.dream = dream
        if self.actor is not None:
            return
        device = dream.device
        c = self.config
        dim = shape[0]
        self.device = torch.device(device)
        self.actor = mlp(dim, c.actor_hidden, int(action_space.n), c.actor_layers).to(self.device)
        self.critic = mlp(dim, c.critic_hidden, c.value_bins, c.critic_layers).to(self.device)
        # Zero the output layers: uniform initial policy and a critic that predicts 0 (DreamerV3).
        for head in (self.actor[-1], self.critic[-1]):
            assert isinstance(head, nn.Linear)  # mlp() ends in a Linear head
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr, eps=c.eps)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr, eps=c.eps)
        # S, the EMA of the 5-95 percentile range, starts at 0 as in DreamerV3 and STORM (the max(1, S) floor
        # applies until the EMA has grown past 1).
        self.return_scale = torch.zeros((), device=self.device)
        self.updates = 0

    def _require_bound(self) -> nn.Module:
        """The actor, once ``bind`` has built the networks (then every other network exists too)."""
        if self.actor is None:
            raise RuntimeError("call bind(dream) first")
        return self.actor

    @torch.no_grad()
    def act(self, features: np.ndarray | torch.Tensor, deterministic: bool = False) -> np.ndarray:
        """features [B, feature_dim] -> actions [B] (int64 numpy)."""
        actor = self._require_bound()
        x = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features, device=self.device)
        logits = actor(x.float())
        action = logits.argmax(-1) if deterministic else torch.distributions.Categorical(logits=logits).sample()
        return action.cpu().numpy()

    def learn(self) -> dict[str, float]:
        """Imagine ``horizon`` steps from fresh DFS starts in the bound dream; one actor and one critic update."""
        actor = self._require_bound()
        c, dream = self.config, self.dream

        # 1. Imagination: no gradients flow into the world model (REINFORCE needs none).
        obs, _ = dream.reset()
        feats, actions, rewards, conts = [obs], [], [], []
        for _ in range(dream.horizon):
            with torch.no_grad():  # validate_args=False: its checks of the logits would also sync every step
                action = torch.distributions.Categorical(logits=actor(obs), validate_args=False).sample()
            obs, reward, terminated, _, _ = dream.step(action)
            feats.append(obs)
            actions.append(action)
            rewards.append(reward)
            conts.append(1.0 - terminated.float())
        feats_t = torch.stack(feats)  # [H + 1, B, F]
        action_t, reward_t, cont_t = torch.stack(actions), torch.stack(rewards), torch.stack(conts)  # [H, B]
        # weight_t = prod_{k < t} c_k: steps after an imagined termination teach nothing.
        weight = torch.cumprod(torch.cat([torch.ones_like(cont_t[:1]), cont_t[:-1]]), dim=0)

        # 2. lambda-returns from the critic's values (one critic pass; its gradient serves the critic loss below).
        # The bootstrap value of the last features is learned from by nobody: its pass runs without a graph (a slice
        # of one 17-step pass would cost a full-size zero-filled gradient in backward).
        critic_logits = self.critic(feats_t[:-1])
        with torch.no_grad():
            value = torch.cat([self.two_hot.mean(critic_logits.detach()), self.two_hot.mean(self.critic(feats_t[-1:]))])
            returns = lambda_returns(reward_t, value, cont_t, c.gamma, c.lambda_)
            # 3. Percentile return normalisation.
            low, high = torch.quantile(returns.flatten(), self._quantiles(returns))
            spread = high - low
            self.return_scale = c.return_scale_decay * self.return_scale + (1 - c.return_scale_decay) * spread
            advantage = (returns - value[:-1]) / self.return_scale.clamp_min(1.0)

        # 4. Actor: REINFORCE + entropy bonus.
        dist = torch.distributions.Categorical(logits=actor(feats_t[:-1]))
        entropy = dist.entropy()
        actor_loss = -(weight * (dist.log_prob(action_t) * advantage + c.entropy_coef * entropy)).mean()
        actor_norm, actor_ok = apply_gradients(
            actor_loss, actor, self.actor_opt, c.lr, self.updates, 0, c.grad_clip
        )

        # Critic: two-hot regression on the returns, regularised towards the slow critic.
        with torch.no_grad():
            slow_target = self.two_hot.mean(self.slow_critic(feats_t[:-1]))
        return_loss, slow_loss = self.two_hot.loss_from_log_probs(
            torch.log_softmax(critic_logits, dim=-1), returns, slow_target
        )
        critic_loss = (weight * (return_loss + c.slow_critic_reg * slow_loss)).mean()
        critic_norm, critic_ok = apply_gradients(
            critic_loss, self.critic, self.critic_opt, c.lr, self.updates, 0, c.grad_clip
        )
        with torch.no_grad():
            for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters(), strict=True):
                slow.lerp_(fast, 1.0 - c.slow_critic_decay)
        self.updates += 1
        return {
            "behaviour/actor_loss": float(actor_loss.detach()),
            "behaviour/critic_loss": float(critic_loss.detach()),
            "behaviour/entropy": float(entropy.detach().mean()),
            "behaviour/imagined_reward": float(reward_t.mean()),
            "behaviour/imagined_termination": float(1 - cont_t.mean()),  # over every dream step, ended dreams too
            # terminations per step among dreams not yet ended: comparable with the driver's env/termination_rate
            "behaviour/imagined_termination_rate": float((weight * (1 - cont_t)).sum() / weight.sum()),
            "behaviour/return_scale": float(self.return_scale),
            "behaviour/value": float(value.mean()),
            "behaviour/actor_grad_norm": actor_norm,
            "behaviour/critic_grad_norm": critic_norm,
            "behaviour/skipped_update": float(not (actor_ok and critic_ok)),
        }

    def _quantiles(self, like: torch.Tensor) -> torch.Tensor:
        """The 5th and 95th percentile levels as one tensor (one sort for both)."""
        key = (like.device, like.dtype)
        if getattr(self, "_quantile_levels", (None, None))[0] != key:
            self._quantile_levels = (key, torch.tensor([0.05, 0.95], device=like.device, dtype=like.dtype))
        return self._quantile_levels[1]

    def state_dict(self) -> dict[str, Any]:
        actor = self._require_bound()
        return {
            "config": to_dict(self.config),
            "actor": actor.state_dict(),
            "critic": self.critic.state_dict(),
            "slow_critic": self.slow_critic.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "return_scale": self.return_scale.cpu(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        actor = self._require_bound()
        if from_dict(ActorCriticConfig, state["config"]) != self.config:
            raise ValueError("checkpoint was saved with a different ActorCriticConfig than this learner's")
        actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.slow_critic.load_state_dict(state["slow_critic"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.return_scale = state["return_scale"].to(self.device)
        self.updates = int(state["updates"])
