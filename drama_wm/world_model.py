"""Drama's world model (paper Sec. 2.2, Eq. 5-7, Tables 5-7): categorical VAE + sequence backbone + heads.

Conventions (REFERENCE.md, "known defects" section, fixed here):
- Time index. A replay row t holds (o_t, a_t, r_t, term_t, first_t). The posterior z_t encodes o_t; the token of
  (z_t, a_t) enters the backbone, whose output d_t predicts the prior of z_{t+1}, the reward r_t and the termination
  term_t of the transition (o_t, a_t) -> o_{t+1}. One convention for training, imagination and acting.
- Policy features at time t are [z_t, d_{t-1}] (1024 + 512 at XS): the current latent and the history up to the
  previous action; d_{-1} = 0 at an episode start. Real acting (LatentObservation) and dreaming (DreamEnv) build
  exactly these features, so a policy trained in one runs unchanged in the other.
- Dream starts (paper Sec. 2.3). A dream begins from the last real transition of a context o_0..o_{L-1}: after
  observing it the state holds d_{L-1}, and the first dreamed latent is z_0 ~ prior(d_{L-1}), so the dream's first
  features are [z_0, d_{L-1}] and its first action a_0 enters the backbone with z_0 (:meth:`WorldModel.start_dreams`).
- Latents stay floating point end to end; episode starts (``first``) reset the backbone so nothing leaks across
  episodes; acting carries the recurrent state (O(1) per step) instead of re-encoding a window of frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drama_wm import sequence
from drama_wm.carry import Carry, RecurrentState
from drama_wm.config_io import from_dict, to_dict
from drama_wm.distributions import (
    SymlogTwoHot,
    categorical_kl,
    mode_one_hot,
    sample_one_hot,
    symexp,
    symlog,
    unimix_probs,
)
from drama_wm.grid import MAX_GRID_SIDE, make_grid_codec
from drama_wm.layers import RMSNorm, mlp
from drama_wm.optim import apply_gradients, make_optimizer
from drama_wm.sequence import BackboneConfig, Mamba2Config

if TYPE_CHECKING:
    from drama_wm.replay import Batch


@dataclass
class WorldModelConfig:
    """Hyper-parameters of the world model; defaults are the paper's XS model (Tables 5-7, REFERENCE.md)."""

    # Autoencoder (Table 5)
    image_size: int = 64  #: frame height = width the conv encoder expects (divisible by 16)
    encoder_channels: tuple[int, ...] = (16, 32, 48, 64, 64)  #: filters per conv layer; the decoder mirrors them
    encoder_strides: tuple[int, ...] = (1, 2, 2, 2, 2)
    kernel_size: int = 5
    vector_hidden: int = 256  #: width of the MLP encoder/decoder used for flat vector observations
    vector_layers: int = 2
    #: encoder/decoder for uint8 frames of at most 16x16 (e.g. MinAtar's 10x10 grids, see drama_wm.envs.minatar):
    #: "mlp" (flattened, vector_hidden wide) or "conv" (drama_wm/grid.py; chosen by measurement, BENCHMARKS.md)
    grid_encoder: str = "mlp"
    grid_channels: int = 32  #: filters of the first "conv" grid layer (the second has twice as many)
    n_latents: int = 32  #: number of categorical variables in z
    n_classes: int = 32  #: classes per variable (z is a 32x32 one-hot, 1024 features)
    unimix: float = 0.01  #: uniform mix on the latent probabilities
    # Sequence model (Table 6)
    #: the sequence backbone and its sizes (drama_wm.sequence): Mamba2Config (the paper's, by default its XS sizes),
    #: MambaConfig, GRUConfig or TransformerConfig; its d_model is also the token width (see ``d_model``)
    backbone: BackboneConfig = field(default_factory=Mamba2Config)
    # Heads (Table 7)
    head_hidden: int = 256
    reward_bins: int = 255
    reward_range: tuple[float, float] = (-20.0, 20.0)  #: bin range in symlog space
    # Loss (Eq. 6-7)
    free_bits: float = 1.0  #: KL below this (nats, summed over the 32 variables) is not penalised
    dyn_scale: float = 1.0
    rep_scale: float = 0.1
    # Optimisation (REFERENCE.md)
    optimizer: str = "laprop"  #: "laprop" (authors) or "adam"
    lr: float = 4e-5
    eps: float = 1e-20
    weight_decay: float = 1e-4
    grad_clip: float = 1000.0
    warmup_updates: int = 1000
    autocast_bf16: bool = True  #: bf16 autocast on CUDA only; CPU always runs fp32
    #: on CUDA, run the conv encoder/decoder on channels-last (NHWC) activations, cuDNN's fast layout for bf16
    #: convolutions and BatchNorm (measured on an H100: see BENCHMARKS.md); CPU keeps the default layout
    channels_last: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, BackboneConfig):
            raise TypeError(
                f"WorldModelConfig.backbone must be a BackboneConfig (e.g. Mamba2Config(), GRUConfig()), got "
                f"{self.backbone!r}; to switch a preset's backbone by name use config.backbone.as_kind(name)"
            )
        if len(self.encoder_channels) != len(self.encoder_strides):
            raise ValueError("encoder_channels and encoder_strides must have the same length")
        if not 0 <= self.unimix < 1:
            raise ValueError(f"unimix must be in [0, 1), got {self.unimix}")

    @property
    def latent_dim(self) -> int:
        return self.n_latents * self.n_classes

    @property
    def d_model(self) -> int:
        """d, the width of the token (z_t, a_t) and of the backbone output d_t: the backbone's d_model."""
        return self.backbone.d_model

    @property
    def feature_dim(self) -> int:
        """Size of the policy features [z_t, d_{t-1}]."""
        return self.latent_dim + self.d_model

    @classmethod
    def xs(cls, **overrides: Any) -> WorldModelConfig:
        """The paper's default model (about 7M parameters with 6 actions)."""
        return cls(**overrides)

    @classmethod
    def s(cls, **overrides: Any) -> WorldModelConfig:
        """Paper Sec. A.3: encoder filters doubled and d_state doubled (about 3M more parameters)."""
        return replace(cls(encoder_channels=(32, 64, 96, 128, 128), backbone=Mamba2Config(d_state=32)), **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> WorldModelConfig:
        """A few-hundred-thousand-parameter model for tests and CPU demos."""
        base = cls(
            encoder_channels=(8, 16, 16, 32, 32),
            vector_hidden=128,
            n_latents=8,
            n_classes=8,
            backbone=Mamba2Config(d_model=128, n_layers=1, dropout=0.0, head_dim=32),
            head_hidden=128,
            lr=1e-3,
            eps=1e-8,
            warmup_updates=0,
        )
        return replace(base, **overrides)


def _conv_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """[N, C, H, W] in channels-last memory on CUDA when asked (same values, another stride order)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.is_cuda else x


class _ConvEncoder(nn.Module):
    """[N, C, H, W] in [0, 1] -> [N, C_last * (H/16) * (W/16)] (1024 at XS): conv k5 'same' + BatchNorm + SiLU."""

    def __init__(self, in_channels: int, config: WorldModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        pad = config.kernel_size // 2
        for c_out, stride in zip(config.encoder_channels, config.encoder_strides, strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, config.kernel_size, stride, pad, bias=False),
                nn.BatchNorm2d(c_out),
                nn.SiLU(),
            ]
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.channels_last = config.channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_conv_layout(x, self.channels_last))


class _ConvDecoder(nn.Module):
    """Mirror of the encoder: z [N, latent] -> Linear -> [N, C_last, H/16, W/16] -> transposed convs -> [N, C, H, W]."""

    def __init__(self, out_channels: int, config: WorldModelConfig) -> None:
        super().__init__()
        channels = list(config.encoder_channels)
        down = int(np.prod(config.encoder_strides))
        self.start_shape = (channels[-1], config.image_size // down, config.image_size // down)
        self.linear = nn.Sequential(
            nn.Linear(config.latent_dim, int(np.prod(self.start_shape)), bias=False),
            nn.BatchNorm1d(int(np.prod(self.start_shape))),
            nn.SiLU(),
        )
        layers: list[nn.Module] = []
        pad = config.kernel_size // 2
        # Encoder layer i maps channels[i-1] -> channels[i] with stride s_i; undo them in reverse order.
        for i in range(len(channels) - 1, 0, -1):
            stride = config.encoder_strides[i]
            layers += [
                nn.ConvTranspose2d(
                    channels[i], channels[i - 1], config.kernel_size, stride, pad, output_padding=stride - 1, bias=False
                ),
                nn.BatchNorm2d(channels[i - 1]),
                nn.SiLU(),
            ]
        # The first encoder layer has stride 1: a final stride-1 conv to the image channels.
        layers.append(nn.Conv2d(channels[0], out_channels, config.kernel_size, config.encoder_strides[0], pad))
        self.net = nn.Sequential(*layers)
        self.channels_last = config.channels_last

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.linear(z).view(z.shape[0], *self.start_shape)
        return torch.sigmoid(self.net(_conv_layout(x, self.channels_last)))


class WorldModel(nn.Module):
    """Categorical VAE + sequence backbone + prior, reward and termination heads (paper Fig. 1, Eq. 5-7).

    Args:
        observation_space: uint8 ``Box(H, W, C)`` images with H = W = ``config.image_size``, or a float ``Box(D,)``.
        action_space: ``Discrete(A)``.
        config: hyper-parameters; ``WorldModelConfig.xs()`` by default.

    The module sits in eval mode (BatchNorm running statistics, no dropout) except inside :meth:`update`.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        config: WorldModelConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config = config or WorldModelConfig.xs()
        self.is_image = _check_observation_space(observation_space, config)
        assert isinstance(observation_space, gym.spaces.Box)  # _check_observation_space raised otherwise
        self.observation_space: gym.spaces.Box = observation_space
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(f"WorldModel supports Discrete action spaces only, got {action_space}")
        self.action_space: gym.spaces.Discrete = action_space
        self.n_actions = int(action_space.n)
        if self.is_image and observation_space.shape[0] <= MAX_GRID_SIDE:
            h, w, c = observation_space.shape
            self.encoder, self.decoder, embed_dim = make_grid_codec(
                config.grid_encoder, (c, h, w), config.latent_dim, config.vector_hidden, config.vector_layers,
                config.grid_channels,
            )
        elif self.is_image:
            channels = observation_space.shape[-1]
            self.encoder = _ConvEncoder(channels, config)
            side = config.image_size // int(np.prod(config.encoder_strides))
            embed_dim = config.encoder_channels[-1] * side * side
            self.decoder = _ConvDecoder(channels, config)
        else:
            obs_dim = observation_space.shape[0]
            self.encoder = mlp(obs_dim, config.vector_hidden, config.vector_hidden, config.vector_layers)
            embed_dim = config.vector_hidden
            self.decoder = mlp(config.latent_dim, config.vector_hidden, obs_dim, config.vector_layers)
        self.posterior_head = nn.Linear(embed_dim, config.latent_dim)
        self.token = nn.Sequential(
            nn.Linear(config.latent_dim + self.n_actions, config.d_model, bias=False),
            RMSNorm(config.d_model),
            nn.SiLU(),
        )
        self.backbone = sequence.make(config.backbone)
        self.prior_head = nn.Linear(config.d_model, config.latent_dim)
        self.reward_head = mlp(config.d_model, config.head_hidden, config.reward_bins, 1)
        self.termination_head = mlp(config.d_model, config.head_hidden, 1, 1)
        self.two_hot = SymlogTwoHot(config.reward_bins, *config.reward_range)
        self.optimizer = make_optimizer(self.parameters(), config.optimizer, config.lr, config.eps, config.weight_decay)
        self.updates = 0  # world-model updates applied so far (drives the LR warm-up)
        self.eval()

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype (float32 normally; float64 in exactness tests)."""
        return self.prior_head.weight.dtype

    # ----------------------------------------------------------------------------------------------------------------
    # Encoding and decoding
    def _preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [N, *obs_shape] (uint8 HWC images or float vectors) -> network input (CHW in [0,1], or symlog)."""
        if self.is_image:
            if obs.dtype != torch.uint8:
                raise TypeError(f"image observations must be uint8, got {obs.dtype}")
            return obs.permute(0, 3, 1, 2).to(self.dtype) / 255.0
        return symlog(obs.to(self.dtype))

    def posterior_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [..., *obs_shape] -> posterior logits [..., n_latents, n_classes]."""
        lead = obs.shape[: obs.dim() - len(self.observation_space.shape)]
        if tuple(obs.shape[len(lead) :]) != tuple(self.observation_space.shape):
            raise ValueError(f"observations must end in shape {self.observation_space.shape}, got {tuple(obs.shape)}")
        flat = obs.reshape(-1, *self.observation_space.shape)
        logits = self.posterior_head(self.encoder(self._preprocess(flat)))
        return logits.view(*lead, self.config.n_latents, self.config.n_classes)

    def latent(
        self,
        logits: torch.Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
        uniform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [..., n_latents, n_classes] -> flat one-hot z [..., latent_dim] (sample or mode, straight-through).

        ``uniform``: optional pre-drawn U(0, 1) noise of the logits' shape for the sample (see ``sample_one_hot``).
        """
        probs = unimix_probs(_full(logits), self.config.unimix)
        z = sample_one_hot(probs, generator, uniform) if sample else mode_one_hot(probs)
        return z.flatten(-2)

    def encode(self, obs: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """obs [..., *obs_shape] -> z [..., latent_dim] from the posterior."""
        return self.latent(self.posterior_logits(obs), sample, generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., latent_dim] -> reconstruction [..., *obs_shape]: uint8 HWC frames, or float vectors."""
        lead = z.shape[:-1]
        out = _full(self.decoder(z.reshape(-1, z.shape[-1]).to(self.dtype)))
        if self.is_image:
            frames = (out.permute(0, 2, 3, 1) * 255.0).round().clamp(0, 255).to(torch.uint8)
            return frames.reshape(*lead, *self.observation_space.shape)
        return symexp(out).reshape(*lead, *self.observation_space.shape)

    # ----------------------------------------------------------------------------------------------------------------
    # Recurrent interface (acting and imagination)
    def initial_state(self, batch_size: int, device: torch.device | None = None) -> RecurrentState:
        device = device or self.prior_head.weight.device
        dtype = self.prior_head.weight.dtype
        return RecurrentState(
            self.backbone.init_state(batch_size, device=device, dtype=dtype),
            torch.zeros(batch_size, self.config.d_model, device=device, dtype=dtype),
        )

    def _tokens(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if action.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"actions must be integer indices, got {action.dtype}")
        one_hot = F.one_hot(action.long(), self.n_actions).to(z.dtype)
        return self.token(torch.cat([z, one_hot], dim=-1))

    def advance(self, state: RecurrentState, z: torch.Tensor, action: torch.Tensor) -> RecurrentState:
        """One O(1) backbone step on the token of (z_t [B, latent_dim], a_t [B]): returns the state holding d_t."""
        d, backbone_state = self.backbone.step(self._tokens(z, action), state.backbone)
        return RecurrentState(backbone_state, d)

    def reset_rows(self, state: RecurrentState, first: torch.Tensor) -> RecurrentState:
        """Rows where ``first`` [B] is True start a new episode: fresh backbone state and d = 0."""
        if not bool(first.any()):
            return state
        return state.merge(first, self.initial_state(state.batch_size, state.d.device))

    def features(self, z: torch.Tensor, state: RecurrentState) -> torch.Tensor:
        """Policy features [z_t, d_{t-1}]: z [B, latent_dim] and state.d [B, d_model] -> [B, feature_dim]."""
        return torch.cat([z, state.d.to(z.dtype)], dim=-1)

    def heads(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """d [..., d_model] -> (prior logits [..., n_latents, n_classes], reward [...], termination logit [...])."""
        prior = self.prior_head(d).view(*d.shape[:-1], self.config.n_latents, self.config.n_classes)
        reward = self.two_hot.mean(_full(self.reward_head(d)))
        termination = _full(self.termination_head(d).squeeze(-1))
        return _full(prior), reward, termination

    def imagine_step(
        self,
        state: RecurrentState,
        z: torch.Tensor,
        action: torch.Tensor,
        generator: torch.Generator | None = None,
        uniform: torch.Tensor | None = None,
    ) -> tuple[RecurrentState, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One dreamed transition from (z_t, a_t): returns (state with d_t, z_{t+1} ~ prior(d_t), r_t, p(term_t)).

        Cost is one backbone step, independent of how long the dream has run. The draw of z_{t+1} uses ``uniform``
        [B, n_latents, n_classes] U(0, 1) noise when given (no host work: CUDA-graph capturable), else ``generator``.
        """
        state = self.advance(state, z, action)
        prior_logits, reward, termination_logit = self.heads(state.d)
        z_next = self.latent(prior_logits, sample=True, generator=generator, uniform=uniform)
        return state, z_next, reward, torch.sigmoid(termination_logit)

    def observe(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        first: torch.Tensor,
        state: RecurrentState | None = None,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, RecurrentState]:
        """Run real sequences in parallel (one backbone forward, no per-step loop).

        Args:
            obs: [B, L, *obs_shape]; action: [B, L] int; first: [B, L] bool episode starts.
            state: the state before the sequence (fresh when None).
        Returns:
            features [B, L, feature_dim] = [z_t, d_{t-1}] at every step, d [B, L, d_model], and the state after the
            last step (holding d_{L-1}), ready for :meth:`advance` / :meth:`imagine_step`.
        """
        batch, length = action.shape
        if first.shape != (batch, length) or first.dtype != torch.bool:
            raise ValueError(
                f"first must be a bool tensor of shape {(batch, length)}, got {first.dtype} {tuple(first.shape)}"
            )
        state = state or self.initial_state(batch, obs.device)
        z = self.encode(obs, sample=sample, generator=generator)
        d, backbone_state = self.backbone(self._tokens(z, action), state.backbone, first)
        d_prev = torch.cat([state.d.unsqueeze(1), d[:, :-1]], dim=1) * (~first).unsqueeze(-1).to(d.dtype)
        features = torch.cat([z, d_prev.to(z.dtype)], dim=-1)
        return features, d, RecurrentState(backbone_state, d[:, -1])

    def start_dreams(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Carry, torch.Tensor]:
        """Start one dream per context of ``batch`` (observation [B, L, *obs_shape], action [B, L], first [B, L]).

        Observes the contexts in one parallel pass, then draws the first dreamed latent from the prior of the last
        real transition (see "Dream starts" in the module docstring). Both draws, first the contexts' posteriors and
        then the priors, come from ``generator`` (torch's global stream when None).

        Returns:
            the carry (state holding d_{L-1}, z_0 [B, latent_dim]), ready for :meth:`imagine_step`, and the contexts'
            posterior latents z [B, L, latent_dim].
        """
        features, _, state = self.observe(batch.observation, batch.action, batch.first, generator=generator)
        prior_logits, _, _ = self.heads(state.d)
        z0 = self.latent(prior_logits, sample=True, generator=generator)
        return Carry(state, z0), features[..., : self.config.latent_dim]

    # ----------------------------------------------------------------------------------------------------------------
    # Training (Eq. 6-7)
    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 6 on a replay batch with fields observation [B, L, ...], action, reward, terminated, first [B, L].

        Targets of the transition t (reward r_t, termination term_t) come from d_t; the prior from d_t is matched to
        the posterior of o_{t+1} unless o_{t+1} starts a new episode (then no successor exists in this episode).
        """
        obs, action, first = batch.observation, batch.action, batch.first
        b, length = action.shape
        logits = self.posterior_logits(obs)  # [B, L, n_latents, n_classes]
        post_probs = unimix_probs(_full(logits), self.config.unimix)
        z = sample_one_hot(post_probs).flatten(-2)
        d, _ = self.backbone(
            self._tokens(z, action), self.backbone.init_state(b, device=obs.device, dtype=z.dtype), first
        )
        prior_logits, _, _ = self.heads(d)

        recon = self.decoder(z.reshape(b * length, -1))
        target = self._preprocess(obs.reshape(b * length, *self.observation_space.shape))
        recon_loss = (_full(recon) - target).pow(2).reshape(b, length, -1).sum(-1).mean()

        # KL between the posterior of o_{t+1} and the prior from d_t, only inside an episode.
        prior_probs = unimix_probs(prior_logits[:, :-1], self.config.unimix)
        post_next = post_probs[:, 1:]
        valid = (~first[:, 1:]).float()
        n_valid = valid.sum().clamp_min(1.0)
        kl_dyn = categorical_kl(post_next.detach(), prior_probs)
        kl_rep = categorical_kl(post_next, prior_probs.detach())
        dyn_loss = (kl_dyn.clamp_min(self.config.free_bits) * valid).sum() / n_valid
        rep_loss = (kl_rep.clamp_min(self.config.free_bits) * valid).sum() / n_valid

        reward_loss = self.two_hot.loss(_full(self.reward_head(d)), batch.reward.to(target.dtype)).mean()
        term_logit = _full(self.termination_head(d).squeeze(-1))
        term_loss = F.binary_cross_entropy_with_logits(term_logit, batch.terminated.to(term_logit.dtype))

        total = (
            recon_loss + self.config.dyn_scale * dyn_loss + self.config.rep_scale * rep_loss + reward_loss + term_loss
        )
        metrics = {
            "wm/loss": total,
            "wm/reconstruction": recon_loss,
            "wm/dynamics_kl": (kl_dyn * valid).sum() / n_valid,
            "wm/representation_kl": (kl_rep * valid).sum() / n_valid,
            "wm/reward_nll": reward_loss,
            "wm/termination_nll": term_loss,
        }
        return total, metrics

    def update(self, batch: Batch) -> dict[str, float]:
        """One optimiser step on a replay batch; returns the loss terms. Non-finite losses are skipped, not applied."""
        was_training = self.training
        self.train()
        device = self.prior_head.weight.device
        use_bf16 = self.config.autocast_bf16 and device.type == "cuda"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            total, metrics = self.loss(batch)
        grad_norm, applied = apply_gradients(
            total, self, self.optimizer, self.config.lr, self.updates, self.config.warmup_updates, self.config.grad_clip
        )
        self.updates += int(applied)
        self.train(was_training)
        out = {k: float(v.detach()) for k, v in metrics.items()}
        out.update({"wm/grad_norm": grad_norm, "wm/skipped_update": float(not applied)})
        return out

    def training_state(self) -> dict[str, Any]:
        """Everything that shapes this model: weights, BatchNorm statistics, optimiser state, update count, config."""
        return {
            "model": self.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "config": to_dict(self.config),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        if from_dict(WorldModelConfig, state["config"]) != self.config:
            raise ValueError("checkpoint was saved with a different WorldModelConfig than this model's")
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])


def _full(x: torch.Tensor) -> torch.Tensor:
    """Upcast bf16/fp16 activations (autocast on CUDA) to float32 for distributions and losses; keep fp32/fp64."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_observation_space(space: gym.spaces.Space, config: WorldModelConfig) -> bool:
    """Returns True for images, False for vectors; raises a clear error for anything else."""
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"WorldModel supports Box observations (uint8 HxWxC images or float vectors), got {space}")
    if space.dtype == np.uint8 and len(space.shape) == 3:
        h, w, _ = space.shape
        if max(h, w) <= MAX_GRID_SIDE:  # small grids get the grid encoder, whatever image_size says
            return True
        down = int(np.prod(config.encoder_strides))
        if h != config.image_size or w != config.image_size:
            raise ValueError(
                f"image observations must be {config.image_size}x{config.image_size}xC for this config, "
                f"got {space.shape} (set WorldModelConfig.image_size or resize the env)"
            )
        if config.image_size % down:
            raise ValueError(f"image_size must be divisible by the encoder's total stride {down}")
        return True
    if np.issubdtype(space.dtype, np.floating) and len(space.shape) == 1:
        return False
    raise TypeError(
        f"WorldModel supports uint8 HxWxC image or float 1-D vector Box spaces, got {space} ({space.dtype})"
    )
