"""Layout policy: cut the product out, draw where it goes on the canvas, and build inpainting inputs.

Everything a candidate's layout depends on is drawn from its own seed, so the candidate is
reproducible from that seed alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image

from aesdata.generate.presets import LayoutRanges
from aesdata.schema import Layout

#: Colour the area to be painted is filled with before inpainting (the pipelines ignore it at strength 1).
FILL = (127, 127, 127)


def cutout(img: Image.Image, mask: Image.Image) -> Image.Image:
    """The product alone: RGBA, alpha = mask, cropped to the mask's bounding box."""
    rgba = img.convert("RGB").convert("RGBA")
    rgba.putalpha(mask)
    box = mask.point(lambda v: 255 if v > 127 else 0).getbbox()
    return rgba.crop(box) if box else rgba


def draw(rng: random.Random, ranges: LayoutRanges) -> Layout:
    """A layout uniformly within the preset's ranges."""
    return Layout(scale=rng.uniform(ranges.scale.lo, ranges.scale.hi),
                  offset_x=rng.uniform(ranges.offset_x.lo, ranges.offset_x.hi),
                  offset_y=rng.uniform(ranges.offset_y.lo, ranges.offset_y.hi))


@dataclass(frozen=True)
class Placement:
    """The product's pixel box on the canvas (may reach past the edges) and its size."""

    x0: int
    y0: int
    width: int
    height: int


def place(product: Image.Image, layout: Layout, size: int, *, max_width: float = 0.95) -> Placement:
    """Pixel box for ``product`` under ``layout``: height = scale x canvas, aspect kept, width capped."""
    aspect = product.width / product.height
    height = layout.scale * size
    if height * aspect > max_width * size:
        height = max_width * size / aspect
    w, h = max(1, round(height * aspect)), max(1, round(height))
    return Placement(x0=round(layout.offset_x * size - w / 2), y0=round(layout.offset_y * size - h / 2),
                     width=w, height=h)


def layout_of(where: Placement, size: int) -> Layout:
    """The layout a placement actually realises (a capped width or a synthetic move changes it)."""
    return Layout(scale=where.height / size, offset_x=min(1.0, max(0.0, (where.x0 + where.width / 2) / size)),
                  offset_y=min(1.0, max(0.0, (where.y0 + where.height / 2) / size)))


def product_layer(product: Image.Image, where: Placement, size: int) -> Image.Image:
    """A transparent ``size`` square with ``product`` resized into ``where`` (the part on the canvas)."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    layer.paste(product.resize((where.width, where.height), Image.Resampling.LANCZOS), (where.x0, where.y0))
    return layer


def inpaint_inputs(product: Image.Image, layout: Layout, size: int) -> tuple[Image.Image, Image.Image]:
    """The canvas with the product placed (RGB) and the mask of what to paint (L, 255 = paint)."""
    layer = product_layer(product, place(product, layout, size), size)
    canvas = Image.alpha_composite(Image.new("RGBA", (size, size), (*FILL, 255)), layer)
    paint = np.where(np.asarray(layer.getchannel("A")) > 127, 0, 255).astype(np.uint8)
    return canvas.convert("RGB"), Image.fromarray(paint, mode="L")
