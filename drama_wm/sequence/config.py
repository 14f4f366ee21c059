"""What a sequence backbone is configured by: the :class:`BackboneConfig` family, one dataclass per backbone.

Members (each next to its backbone): ``Mamba2Config`` ("mamba2", Drama's), ``MambaConfig`` ("mamba"), ``GRUConfig``
("gru") and ``TransformerConfig`` ("transformer"). Field names are the paper's and mamba2-minimal's symbols; the
defaults are the paper's XS sizes (Table 6, REFERENCE.md). ``drama_wm.sequence.make(config)`` builds the backbone a
config describes; :func:`drama_wm.config_io.to_dict` stores a config with its ``"kind"``, ``from_dict`` rebuilds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from drama_wm.checks import positive_int
from drama_wm.config_io import Variant

#: Sizes that carry over when a backbone is swapped for another kind (:meth:`BackboneConfig.as_kind`): the width,
#: the depth, the dropout and, between the two SSMs, the state size N.
SHARED_SIZES = ("d_model", "n_layers", "dropout", "d_state")


@dataclass(frozen=True)
class BackboneConfig(Variant):
    """The family of backbone configs; every member has these three fields (paper Table 6 defaults)."""

    d_model: int = 512  #: D, width of the residual stream: the token in, the output d_t out
    n_layers: int = 2  #: residual blocks in the stack
    dropout: float = 0.1  #: dropout on each residual branch, in training only

    def __post_init__(self) -> None:
        positive_int(f"{type(self).__name__}.d_model", self.d_model)
        positive_int(f"{type(self).__name__}.n_layers", self.n_layers)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"{type(self).__name__}.dropout must be in [0, 1), got {self.dropout!r}")

    def as_kind(self, kind: str) -> BackboneConfig:
        """This backbone as a ``kind`` backbone: itself when it is one already; otherwise that kind's defaults with
        the :data:`SHARED_SIZES` both kinds have taken from this config (the CLI's ``--backbone`` and a sweep's
        ``--set world_model.backbone=KIND`` swap a preset's backbone this way).
        """
        if kind == self.kind:
            return self
        member = BackboneConfig.member(kind)
        target = {f.name for f in dataclasses.fields(member)}
        shared = {name: getattr(self, name) for name in SHARED_SIZES if name in target and hasattr(self, name)}
        config: BackboneConfig = member(**shared)
        return config


__all__ = ["SHARED_SIZES", "BackboneConfig"]
