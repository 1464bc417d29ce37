"""Refusals of the data as a whole name what the data has and which setting would fit."""

from __future__ import annotations

import pandas as pd
import pytest

from rmreco.training.splits import TrainingDataError, require_segments


def test_data_without_the_spec_segments_is_refused_naming_what_it_has() -> None:
    clients = pd.DataFrame({"segment": ["sme", "sme", "corporate"]})
    require_segments(clients, ["sme"])  # some clients of the spec's segments: no refusal
    require_segments(clients, ["personal", "corporate"])
    with pytest.raises(TrainingDataError) as refused:
        require_segments(clients, ["personal"])
    message = str(refused.value)
    assert "no client of the spec's segments (personal)" in message
    assert "sme 2, corporate 1" in message
    assert "`segments`" in message
