"""The scorer, re-exported: it lives in :mod:`aesdata.scoring`, below the stages, because annotate
scores annotators on gold tasks with it and no stage package imports another."""

from aesdata.scoring import (
    ALL_SUBSETS,
    Prediction,
    SampleScore,
    exact,
    proportional,
    random_sample_score,
    score_sample,
    summarise,
)

__all__ = [
    "ALL_SUBSETS",
    "Prediction",
    "SampleScore",
    "exact",
    "proportional",
    "random_sample_score",
    "score_sample",
    "summarise",
]
