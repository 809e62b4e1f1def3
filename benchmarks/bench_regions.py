"""How well the synthetic backend's recorded regions match the defects it drew.

For candidates with one injected defect, the pixels that differ from the candidate's clean twin (same
seed, nothing injected) are the drawn defect. Printed per dimension: the share of those pixels inside the
recorded box (coverage), the share of the box that changed (precision), and the IoU between the box and
the changed pixels' bounding box. Figures, not pass/fail.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aesdata.generate.demo_sources import draw_product  # noqa: E402
from aesdata.generate.layout import cutout  # noqa: E402
from aesdata.generate.presets import load_preset  # noqa: E402
from aesdata.generate.stage import Planner  # noqa: E402
from aesdata.generate.synthetic import render_one  # noqa: E402
from aesdata.schema import DIMENSIONS, Region  # noqa: E402

SIZE, CHANGED = 256, 24  # canvas side; a pixel "changed" when a channel moved by more than this


def box_mask(region: Region, size: int) -> np.ndarray:
    x, y, w, h = (round(v * size) for v in region.box)
    mask = np.zeros((size, size), bool)
    mask[y:y + h, x:x + w] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def match(dimension: str, seed: int, kind: int) -> tuple[float, float, float]:
    """(coverage, precision, IoU of bounding boxes) of one single-defect candidate's region."""
    img = draw_product(kind)
    product = cutout(img, img.getchannel("A"))
    planner = Planner.of(load_preset("synthetic"))
    clean, _ = render_one(planner.job("s", "A", seed, product), SIZE)
    bad, _ = render_one(planner.job("s", "A", seed, product, (dimension,)), SIZE)
    changed = np.abs(np.asarray(clean.image, int) - np.asarray(bad.image, int)).max(axis=2) > CHANGED
    (region,) = bad.regions
    inside = box_mask(region, SIZE)
    ys, xs = np.nonzero(changed)
    drawn = np.zeros_like(changed)
    drawn[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
    return (float((changed & inside).sum() / max(1, changed.sum())),
            float((changed & inside).sum() / max(1, inside.sum())), iou(inside, drawn))


def main() -> int:
    cases = [(seed, kind) for seed in range(100, 112) for kind in range(4)]
    print(f"{len(cases)} single-defect candidates per dimension, {SIZE}px, changed = channel moved > {CHANGED}")
    print(f"{'dimension':<24}{'coverage':>10}{'precision':>11}{'bbox IoU':>10}")
    for dim in DIMENSIONS:
        figures = [match(dim, seed, kind) for seed, kind in cases]
        cov, prec, box_iou = (statistics.median(f[i] for f in figures) for i in range(3))
        print(f"{dim:<24}{cov:>10.2f}{prec:>11.2f}{box_iou:>10.2f}")
    print("medians; coverage = changed pixels inside the recorded box / all changed pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
