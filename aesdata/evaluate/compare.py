"""``aesdata eval compare A.json B.json``: two eval reports, sample by sample.

Only samples present in both reports are compared (a different split or a newer version shares some
or none; the counts say so). For each sample the per-sample scores (means over rollouts) of A and B
are set side by side: B wins where its proportional score is higher. The sign test is the exact
two-sided binomial test on wins against losses (ties dropped): the chance of a split at least this
uneven if neither run were better.
"""

from __future__ import annotations

from math import comb
from typing import Any


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value of ``wins`` against ``losses`` (1.0 when there are none)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The comparison of report ``b`` against report ``a`` (deltas are B minus A)."""
    by_a = {s["sample_id"]: s for s in a["samples"]}
    by_b = {s["sample_id"]: s for s in b["samples"]}
    common = [sid for sid in by_a if sid in by_b]
    relabelled = [sid for sid in common if by_a[sid]["answer"] != by_b[sid]["answer"]]
    out: dict[str, Any] = {
        "a": f"{a.get('model')} on {a.get('dataset')} {a.get('split')}",
        "b": f"{b.get('model')} on {b.get('dataset')} {b.get('split')}",
        "common": len(common),
        "only_in_a": len(by_a) - len(common),
        "only_in_b": len(by_b) - len(common),
        "relabelled": len(relabelled),
    }
    for key in ("exact", "proportional"):
        va = _mean([by_a[sid][key] for sid in common])
        vb = _mean([by_b[sid][key] for sid in common])
        out[f"{key}_a"], out[f"{key}_b"] = va, vb
        out[f"{key}_delta"] = None if va is None or vb is None else vb - va
    better = [sid for sid in common if by_b[sid]["proportional"] > by_a[sid]["proportional"]]
    worse = [sid for sid in common if by_b[sid]["proportional"] < by_a[sid]["proportional"]]
    out.update(
        {
            "b_better": len(better),
            "b_worse": len(worse),
            "ties": len(common) - len(better) - len(worse),
            "sign_test_p": sign_test(len(better), len(worse)),
            "better_samples": better,
            "worse_samples": worse,
        }
    )
    return out
