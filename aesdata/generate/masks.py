"""The product mask of a source: its alpha, else a sidecar ``NAME.mask.png``, else a background estimate.

Sources are stored as blobs, so the sidecar is looked up at generation time next to the file the
source came from (``sources.origin`` is the absolute path ingest read; ingest skips ``*.mask.png``
itself). Looking it up late rather than copying it at ingest keeps ingest free of generation
concerns and lets a user add or fix a mask after ingesting; the cost is that the file must still be
there, and when it is not the next rule applies (and a source no rule covers is skipped with one
line naming it, never given a made-up mask).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from aesdata.errors import InputRejected

#: The product must cover at least this share of the image, and leave some background.
MIN_COVER, MAX_COVER = 0.005, 0.97
#: A studio background: this share of the border within ``BORDER_TOL`` of its median colour.
BORDER_SHARE, BORDER_TOL = 0.9, 24.0


def sidecar_path(origin: str) -> Path | None:
    """``photo.png`` -> ``photo.mask.png`` for file origins; None for hub rows (``hf://...``)."""
    if "://" in origin:
        return None
    path = Path(origin)
    return path.with_name(f"{path.stem}.mask.png")


def _checked(mask: np.ndarray, origin: str, how: str) -> Image.Image:
    cover = float((mask > 127).mean())
    if not MIN_COVER <= cover <= MAX_COVER:
        raise InputRejected(f"{origin}: no usable product mask: the {how} covers {cover:.1%} of the image "
                            f"(needs {MIN_COVER:.1%}-{MAX_COVER:.0%})")
    return Image.fromarray(mask.astype(np.uint8), mode="L")


def _from_alpha(img: Image.Image, origin: str) -> Image.Image | None:
    if img.mode != "RGBA":
        return None
    alpha = np.asarray(img.getchannel("A"))
    if alpha.min() >= 250:  # an opaque RGBA says nothing about the product
        return None
    return _checked(alpha, origin, "alpha channel")


def _from_sidecar(img: Image.Image, origin: str) -> Image.Image | None:
    path = sidecar_path(origin)
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as side:
            side.load()
            mask = side.convert("L")
    except OSError as exc:
        raise InputRejected(f"{path}: unreadable sidecar mask: {exc}") from None
    if mask.size != img.size:
        raise InputRejected(f"{path}: sidecar mask is {mask.width}x{mask.height}, "
                            f"the image is {img.width}x{img.height}")
    return _checked(np.asarray(mask), origin, f"sidecar mask {path.name}")


def _from_background(img: Image.Image, origin: str) -> Image.Image:
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    h, w, _ = rgb.shape
    ring = max(2, min(h, w) // 40)
    border = np.concatenate([rgb[:ring].reshape(-1, 3), rgb[-ring:].reshape(-1, 3),
                             rgb[:, :ring].reshape(-1, 3), rgb[:, -ring:].reshape(-1, 3)])
    bg = np.median(border, axis=0)
    share = float((np.linalg.norm(border - bg, axis=1) < BORDER_TOL).mean())
    if share < BORDER_SHARE:
        side = sidecar_path(origin)
        tip = f"add {side.name} next to it" if side else "give it an alpha channel"
        raise InputRejected(f"{origin}: no usable product mask: no alpha, no sidecar, and the background is "
                            f"not uniform ({share:.0%} of the border matches); {tip}")
    product = np.linalg.norm(rgb - bg, axis=2) >= BORDER_TOL
    product = ndimage.binary_closing(product, iterations=2)
    product = ndimage.binary_fill_holes(product)
    labels, n = ndimage.label(product)
    if n:
        sizes = ndimage.sum(product, labels, range(1, n + 1))
        product = labels == (int(np.argmax(sizes)) + 1)
    return _checked(product.astype(np.uint8) * 255, origin, "background estimate")


def product_mask(img: Image.Image, origin: str) -> tuple[Image.Image, str]:
    """The product mask (L, 255 = product) and which rule found it; :class:`InputRejected` when none does."""
    for how, rule in (("alpha", _from_alpha), ("sidecar", _from_sidecar)):
        mask = rule(img, origin)
        if mask is not None:
            return mask, how
    return _from_background(img, origin), "background"
