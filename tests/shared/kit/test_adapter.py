"""What the kit checks for every family adapter."""

from __future__ import annotations

import pytest

from chronotick.kit import refuse_unserved_models


def test_a_family_refuses_to_load_a_model_it_does_not_serve_naming_what_it_serves() -> None:
    with pytest.raises(ValueError, match=r"unknown models \['ttm-typo'\]; this family serves \['ttm', 'ttm-exog'\]"):
        refuse_unserved_models(["ttm", "ttm-typo"], ("ttm", "ttm-exog"))


def test_a_family_loads_any_subset_of_what_it_serves() -> None:
    refuse_unserved_models(["ttm-exog"], ("ttm", "ttm-exog"))
