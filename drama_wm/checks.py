"""Argument checks shared by the whole package: one helper per kind of value, one exception type (ValueError).

Every message names the argument, what was expected and what came, e.g.
``n_layers must be an int >= 1, got 0 (int)`` or ``num_envs must be an int >= 1, got True (bool)``.
"""

from __future__ import annotations

import numpy as np


def int_at_least(name: str, value: object, minimum: int) -> int:
    """``value`` as an int when it is an integer >= ``minimum``; else a ValueError naming ``name``.

    Python and NumPy integers are accepted; bools are not integers here, nor are floats with integral values.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    return int(value)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int when it is an integer >= 1; else a ValueError naming ``name`` (see :func:`int_at_least`)."""
    return int_at_least(name, value, 1)


__all__ = ["int_at_least", "positive_int"]
