"""drama_wm.checks: one exception type (ValueError) and one message shape for every integer argument check."""

from __future__ import annotations

import numpy as np
import pytest

from drama_wm.checks import int_at_least, positive_int


def test_positive_int_returns_python_ints() -> None:
    assert positive_int("n", 3) == 3
    value = positive_int("n", np.int64(7))
    assert value == 7 and type(value) is int
    assert int_at_least("size", 5, 5) == 5


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0 (int)"), (-2, "-2 (int)"), (True, "True (bool)"), (np.bool_(True), "np.True_ (bool)"), (1.0, "1.0 (float)"),
     ("3", "'3' (str)"), (None, "None (NoneType)")],
)
def test_positive_int_rejects_non_ints_bools_and_small_values_with_a_value_error(value: object, shown: str) -> None:
    with pytest.raises(ValueError) as error:
        positive_int("horizon", value)
    assert str(error.value) == f"horizon must be an int >= 1, got {shown}"


def test_int_at_least_names_its_minimum() -> None:
    with pytest.raises(ValueError, match=r"^size must be an int >= 5, got 4 \(int\)$"):
        int_at_least("size", 4, 5)
