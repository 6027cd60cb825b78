"""Calibrated time shifts of the official alignment heads.

Times read off cross-attention are off by a roughly constant amount that depends on the model and on which
heads are averaged: with their official heads, tiny.en's words come out late and base's early. The default
alignment mode adds the shift below to every word time. Each value is the median signed boundary error
(hypothesis - reference, starts and ends together) of the default mode without a shift, negated, measured by
``benchmarks/calibrate.py`` on the *synthetic* ``festival`` set (exact boundaries), and checked on the human-
labelled ``timit-dev`` set, which it never saw (see the README's accuracy table).

The same goes for the boundary refinements in ``refiners/``: each was fitted for one model's official heads and
calibrated shift, so it applies only while the model has exactly those heads.

Models and head sets not listed get 0 unless their checkpoint carries ``alignment_time_shift`` (``heads find``
measures and writes one along with the heads it finds).
"""

from __future__ import annotations

import json
from importlib import resources

from .refine import RefineParams

# official model name -> seconds to add to word times, for that model's official heads
# (benchmarks/calibrate.py --stride 3: 130 festival clips, all three voices, 2158 boundaries each)
OFFICIAL_TIME_SHIFT: dict[str, float] = {
    "tiny.en": -0.089,  # median signed error +88.6 ms: words come out late
    "base": +0.059,  # median signed error -58.9 ms: words come out early
}


def official_time_shift(name: str | None) -> float:
    """The calibrated shift of an official model's official heads (0 when not calibrated)."""
    return OFFICIAL_TIME_SHIFT.get(name or "", 0.0)


def official_refiner(name: str | None) -> RefineParams | None:
    """The boundary refinement shipped for an official model's official heads (``alignment/refiners/NAME.json``,
    written by ``tools/fit_bundled_refiners.py``), or None when none is shipped for ``name``."""
    if not name:
        return None
    path = resources.files(__package__).joinpath("refiners", f"{name}.json")
    if not path.is_file():
        return None
    return RefineParams.from_dict(json.loads(path.read_text(encoding="utf-8")))
