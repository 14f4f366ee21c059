"""What the world model carries from one step to the next: the recurrent state, and with it the current latent.

:class:`RecurrentState` is the backbone's state and its last output d (d_{t-1}: the history up to the previous
action). :class:`Carry` adds the current latent z_t: together they are the policy features [z_t, d_{t-1}] (time-index
conventions in drama_wm/world_model.py) and everything needed for the next step. Acting in the real env
(:class:`~drama_wm.LatentObservation`) and dreaming (:class:`~drama_wm.DreamEnv`) both carry one ``Carry``, and save
and restore it through :meth:`Carry.state_dict` / :meth:`Carry.from_state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from drama_wm import sequence


@dataclass
class RecurrentState:
    """What the world model carries between steps: the backbone's state and its last output d.

    ``backbone`` is a flat tuple of tensors with the batch first (drama_wm.sequence's state format); ``d`` [B, d_model]
    is d_{t-1}, zero at an episode start.
    """

    backbone: tuple[torch.Tensor, ...]
    d: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.d.shape[0]

    def select(self, index: torch.Tensor) -> RecurrentState:
        """Rows ``index`` (int or bool tensor over the batch)."""
        return RecurrentState(sequence.select_state(self.backbone, index), self.d[index])

    def merge(self, mask: torch.Tensor, new: RecurrentState) -> RecurrentState:
        """Rows where ``mask`` [B] is True come from ``new``, the others from ``self``."""
        d = torch.where(mask[:, None], new.d, self.d)
        return RecurrentState(sequence.merge_state(mask, new.backbone, self.backbone), d)

    def put_(self, index: torch.Tensor, rows: RecurrentState) -> None:
        """In place: rows ``index`` [k] (int) are overwritten by ``rows`` (a state of batch size k). The tensors keep
        their storage, so a captured CUDA graph that reads them sees the new rows."""
        for s, r in zip((*self.backbone, self.d), (*rows.backbone, rows.d), strict=True):
            s.index_copy_(0, index, r.to(s.dtype))

    def detach(self) -> RecurrentState:
        return RecurrentState(tuple(s.detach() for s in self.backbone), self.d.detach())


#: the keys of :meth:`Carry.state_dict`
CARRY_KEYS = ("backbone", "d", "z")


@dataclass
class Carry:
    """The recurrent state after step t-1 and the latent z_t [B, latent_dim] of step t, for B rows.

    ``state.d`` is d_{t-1}, so the policy features of step t are ``WorldModel.features(z, state)`` = [z_t, d_{t-1}]
    and the next step advances the backbone on the token of (z_t, a_t).
    """

    state: RecurrentState
    z: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.z.shape[0])

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Every carried tensor in a fixed order: the backbone state's, then d, then z."""
        return (*self.state.backbone, self.state.d, self.z)

    def to(self, device: torch.device | str) -> Carry:
        """The same values on ``device`` (tensors already there are shared, as ``torch.Tensor.to`` does)."""
        state = RecurrentState(tuple(s.to(device) for s in self.state.backbone), self.state.d.to(device))
        return Carry(state, self.z.to(device))

    def put_(self, index: torch.Tensor, rows: Carry) -> None:
        """In place: rows ``index`` [k] (int) are overwritten by ``rows`` (a carry of batch size k). The tensors keep
        their storage, so a captured CUDA graph that reads them sees the new rows."""
        self.state.put_(index, rows.state)
        self.z.index_copy_(0, index, rows.z.to(self.z.dtype))

    def state_dict(self) -> dict[str, Any]:
        """``{"backbone": tuple of tensors, "d": tensor, "z": tensor}``: the live tensors (not copies), plain data
        only, so it saves with ``torch.save`` and loads with ``torch.load(weights_only=True)``."""
        return {"backbone": self.state.backbone, "d": self.state.d, "z": self.z}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], device: torch.device | str) -> Carry:
        """Rebuild a carry from :meth:`state_dict` on ``device``. The tensors are copied, so the new carry shares no
        storage with ``state`` (a carry is updated in place, see :meth:`put_`); other keys of ``state`` are left
        to the caller."""
        missing = [key for key in CARRY_KEYS if key not in state]
        if missing:
            raise KeyError(f"a carry state needs the keys {list(CARRY_KEYS)}; missing {missing}")
        backbone, d, z = state["backbone"], state["d"], state["z"]
        if not isinstance(backbone, (tuple, list)) or not all(torch.is_tensor(s) for s in (*backbone, d, z)):
            raise TypeError(
                "a carry state holds a tuple of tensors under 'backbone' and tensors under 'd' and 'z', got "
                f"{type(backbone).__name__}, {type(d).__name__}, {type(z).__name__}"
            )
        if not all(s.shape[0] == z.shape[0] for s in (*backbone, d)):
            raise ValueError(
                f"every carried tensor needs the batch size of z ({z.shape[0]}) first, got shapes "
                f"{[tuple(s.shape) for s in (*backbone, d)]}"
            )
        copy = [s.to(device, copy=True) for s in (*backbone, d, z)]
        return cls(RecurrentState(tuple(copy[:-2]), copy[-2]), copy[-1])
