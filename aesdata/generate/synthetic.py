"""The synthetic backend: a procedural studio scene around the real product, with labelled defects.

No weights. Each candidate is drawn from its seed: a wall and a floor of some material, a light side
(shown by a window patch, the shading and the props' shadows), one or two props, the product standing
on the floor with a contact shadow and a cast shadow that falls away from the light. A defect is the
same picture with one thing made wrong the way diffusion models get it wrong:

* ``appearance_deformation``: the product is bent, bulged or made to sag (a smooth non-rigid warp);
* ``physical_shadow``: its shadow is missing, falls toward the light, or is doubled;
* ``placement_layout``: it floats above its contact shadow, is cut off by the frame, or is tiny/giant;
* ``extension_rationality``: it continues past its edge as a mirrored or tiled copy of itself.

Each sample gets a random number (0-4) of clean candidates; the injected defects become the label.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from aesdata import __version__
from aesdata.generate.backend import Job, Rendered
from aesdata.generate.layout import Placement, layout_of, place, product_layer
from aesdata.generate.presets import Preset
from aesdata.schema import DIMENSIONS, SLOTS, Dimension, Region, Slot

# (name, wall RGB, floor RGB, floor texture); colours are jittered per candidate.
MATERIALS: tuple[tuple[str, tuple[int, int, int], tuple[int, int, int], str], ...] = (
    ("white marble countertop", (226, 222, 214), (236, 234, 230), "marble"),
    ("light oak table", (214, 206, 192), (196, 158, 112), "wood"),
    ("walnut desk", (200, 196, 188), (120, 84, 58), "wood"),
    ("grey concrete slab", (208, 208, 204), (150, 150, 146), "concrete"),
    ("pastel pink paper backdrop", (236, 204, 204), (232, 196, 196), "paper"),
    ("sage green paper backdrop", (186, 204, 184), (178, 198, 176), "paper"),
    ("beige linen tablecloth", (222, 214, 200), (214, 202, 180), "linen"),
    ("black slate board", (96, 98, 104), (58, 60, 64), "concrete"),
    ("sky blue paper backdrop", (188, 212, 232), (180, 204, 226), "paper"),
    ("terracotta tile", (232, 220, 204), (184, 112, 82), "concrete"),
)
PROPS = ("ceramic vase", "orange", "wooden block", "glass jar")


def draw_defects(rng: random.Random) -> dict[Slot, tuple[Dimension, ...]]:
    """Which slots are clean (a uniform 0-4 of them) and what the others get (one defect, sometimes two)."""
    clean = set(rng.sample(SLOTS, rng.randint(0, 4)))
    return {s: () if s in clean else tuple(rng.sample(DIMENSIONS, 1 if rng.random() < 0.75 else 2))
            for s in SLOTS}


# --------------------------------------------------------------------------- small image helpers


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] (a random grid, upsampled and blurred)."""
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1))
    big = ndimage.zoom(grid, (h / (cells + 1), w / (cells + 1)), order=3)[:h, :w]
    big = np.pad(big, ((0, h - big.shape[0]), (0, w - big.shape[1])), mode="edge")
    return big / max(1e-6, float(np.abs(big).max()))


def _alpha(img: Image.Image) -> np.ndarray:
    return np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(a, sigma) if sigma > 0 else a


def _over(base: np.ndarray, rgba: Image.Image) -> np.ndarray:
    """Composite an RGBA layer over a float RGB canvas."""
    layer = np.asarray(rgba, dtype=np.float32) / 255.0
    a = layer[..., 3:4]
    return base * (1 - a) + layer[..., :3] * a


# --------------------------------------------------------------------------- the scene


@dataclass(frozen=True)
class Scene:
    material: str
    wall: np.ndarray
    floor: np.ndarray
    texture: str
    horizon: int  # first floor row
    light: int  # -1: light from the left, +1: from the right
    window: bool


def _scene(rng: random.Random, size: int, base_y: int) -> Scene:
    """Materials, light side and a floor line above ``base_y`` (where the product stands)."""
    name, wall, floor, texture = rng.choice(MATERIALS)
    jitter = np.array([rng.uniform(-10, 10) for _ in range(3)])
    horizon = int(np.clip(base_y - rng.uniform(0.14, 0.32) * size, 0.3 * size, base_y - 0.08 * size))
    return Scene(material=name, wall=(np.array(wall) + jitter) / 255.0, floor=(np.array(floor) + jitter) / 255.0,
                 texture=texture, horizon=horizon, light=rng.choice((-1, 1)), window=rng.random() < 0.6)


def _floor_texture(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative texture for the floor rows (``h`` x ``w``), around 1."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = (yy + 8) / (h + 8)  # perspective: features grow toward the viewer
    if kind == "wood":  # grain running left-right, compressed with distance, with plank seams
        v = np.log1p(yy / 6.0) * 9.0 + _smooth_noise(rng, h, w, 6) * 0.6 + xx / w * 0.4
        grain = 0.5 + 0.5 * np.sin(v * 3.0 + 1.5 * np.sin(xx / w * 7 + v))
        seams = np.abs(((v / 2.2) % 1.0) - 0.5) > 0.48
        return 0.88 + 0.14 * grain ** 2 - 0.12 * seams + 0.03 * _smooth_noise(rng, h, w, 30)
    if kind == "marble":  # a few thin, wandering veins
        turb = _smooth_noise(rng, h, w, 4) * 1.6 + _smooth_noise(rng, h, w, 11) * 0.35
        veins = np.abs(np.sin(xx / w * 3.2 + yy / h * 1.5 + turb * 2.0))
        return 1.0 - 0.2 * np.exp(-veins * 45) - 0.05 * np.exp(-veins * 6) + 0.015 * _smooth_noise(rng, h, w, 20)
    if kind == "concrete":
        return 1.0 + 0.06 * _smooth_noise(rng, h, w, 10) + 0.03 * rng.standard_normal((h, w))
    if kind == "linen":
        weave = np.sin(xx * 1.7) * np.sin(yy * 1.7 / (depth + 0.2))
        return 1.0 + 0.025 * weave + 0.03 * _smooth_noise(rng, h, w, 12)
    return 1.0 + 0.015 * _smooth_noise(rng, h, w, 4)  # paper


def _background(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """Wall and floor (float RGB), brighter on the lit side, with the floor's texture."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    side = (xx - 0.5) * -scene.light  # +0.5 on the lit side
    img = np.empty((size, size, 3), np.float32)
    wall_light = 1.0 + 0.16 * side - 0.06 * yy + 0.02 * _smooth_noise(rng, size, size, 3)
    img[:] = scene.wall * wall_light[..., None]
    if scene.window:  # a soft patch of window light on the wall, slanting away from the light
        patch = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(patch)
        x0 = size * (0.06 if scene.light < 0 else 0.58)
        slant = -scene.light * 0.12 * size
        for k in range(2):
            left = x0 + k * 0.17 * size
            draw.polygon([(left, 0.05 * size), (left + 0.14 * size, 0.05 * size),
                          (left + 0.14 * size + slant, scene.horizon), (left + slant, scene.horizon)], fill=255)
        glow = _blur(np.asarray(patch, np.float32) / 255.0, size / 60)
        img += (glow * 0.16)[..., None]
    h = size - scene.horizon
    fy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    floor_light = (1.04 - 0.14 * fy + 0.1 * side[scene.horizon:]) * _floor_texture(scene.texture, h, size, rng)
    floor = scene.floor * floor_light[..., None]
    if scene.texture == "paper":  # a seamless sweep: wall and floor blend
        blend = np.clip((np.arange(size, dtype=np.float32) - scene.horizon + 0.06 * size) / (0.12 * size), 0, 1)
        full = np.concatenate([np.repeat(floor[:1], scene.horizon, 0), floor])
        img = img * (1 - blend[:, None, None]) + full * blend[:, None, None]
    else:  # a table edge: floor plane with a thin darker line where it meets the wall
        img[scene.horizon:] = floor
        img[scene.horizon:scene.horizon + max(1, size // 200)] *= 0.82
    return img


def _prop(kind: str, width: int, height: int, light: int, rng: random.Random) -> Image.Image:
    """A simple shaded object (RGBA) lit from ``light``'s side."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    colour = {"ceramic vase": (rng.randint(200, 240), rng.randint(190, 230), rng.randint(170, 220)),
              "orange": (232, 128, 38), "wooden block": (176, 134, 88), "glass jar": (190, 214, 210)}[kind]
    if kind == "orange":
        draw.ellipse((0, 0, width - 1, height - 1), fill=(*colour, 255))
    elif kind == "wooden block":
        draw.rectangle((0, int(height * 0.15), width - 1, height - 1), fill=(*colour, 255))
        draw.polygon([(0, int(height * 0.15)), (int(width * 0.2), 0), (width - 1, 0),
                      (width - 1, int(height * 0.15))], fill=(*[int(c * 1.12) for c in colour], 255))
    else:  # vase / jar: a rounded body with a neck
        neck = int(width * (0.45 if kind == "ceramic vase" else 0.8))
        draw.rounded_rectangle((0, int(height * 0.25), width - 1, height - 1), radius=width // 3,
                               fill=(*colour, 255 if kind == "ceramic vase" else 200))
        draw.rectangle(((width - neck) // 2, 0, (width + neck) // 2, int(height * 0.35)),
                       fill=(*colour, 255 if kind == "ceramic vase" else 200))
    arr = np.asarray(img, np.float32)
    xs = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    shade = 1.0 - 0.32 * np.clip(xs * light, -1, 1) - 0.1
    if kind == "orange":
        yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
        shade = shade - 0.15 * np.clip(yy, 0, 1)
    arr[..., :3] = np.clip(arr[..., :3] * shade[..., None], 0, 255)
    return Image.fromarray(arr.astype(np.uint8), "RGBA")


def _cast_shadow(silhouette: np.ndarray, base_y: float, light: int, length: float, squash: float,
                 blur: float, horizon: int) -> np.ndarray:
    """The silhouette laid onto the floor behind its base, leaning away from the side ``light`` names.

    A point ``h`` pixels above the base lands ``squash * h`` above it and ``length * h`` to the side;
    the shadow ends softly where the floor meets the wall.
    """
    size = silhouette.shape[0]
    shear = -light * length
    # inverse map (output u, v) -> input (x, y): y = base - (base - v) / squash; x = u - shear * (base - y)
    coeffs = (1.0, shear / squash, -shear * base_y / squash, 0.0, 1.0 / squash, base_y * (1 - 1 / squash))
    img = Image.fromarray((silhouette * 255).astype(np.uint8), "L")
    out = np.asarray(img.transform((size, size), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR),
                     np.float32) / 255.0
    rows = np.arange(size, dtype=np.float32)[:, None]
    fade = np.clip(1 - (base_y - rows) / (size * 0.55), 0.35, 1)  # softer and fainter further away
    on_floor = np.clip((rows - horizon + 3) / 6, 0, 1)
    return _blur(out, blur) * fade * on_floor * (rows <= base_y + 2)


def _contact_shadow(silhouette: np.ndarray, base_y: float, size: int) -> np.ndarray:
    """The dark, soft ellipse right under an object's base (what makes it stand, not hover)."""
    cols = np.where(silhouette[max(0, int(base_y) - 6):int(base_y) + 1].max(axis=0, initial=0) > 0.5)[0]
    out = np.zeros((size, size), np.float32)
    if cols.size == 0:
        return out
    w = cols[-1] - cols[0] + 1
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).ellipse((cols[0] - 0.04 * w, base_y - 0.035 * w - 2, cols[-1] + 0.04 * w,
                                 base_y + 0.035 * w + 2), fill=255)
    return _blur(np.asarray(img, np.float32) / 255.0, 2 + w * 0.025)


# --------------------------------------------------------------------------- the four defects


def _warp(product: Image.Image, rng: random.Random) -> Image.Image:
    """A smooth non-rigid warp: an S-bend, a bulge, or a sagging top (premultiplied, so no fringes)."""
    arr = np.asarray(product, np.float32)
    h, w = arr.shape[:2]
    pad = int(0.14 * w)
    arr = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)))
    arr[..., :3] *= arr[..., 3:4] / 255.0
    hh, ww = arr.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    sy, sx = yy.copy(), xx.copy()
    mode = rng.choice(("bend", "bulge", "sag"))
    # every mode bends the outline a little; "bend" makes it an S
    amp = (rng.uniform(0.07, 0.12) if mode == "bend" else rng.uniform(0.03, 0.05)) * w
    turns, phase = rng.uniform(0.7, 1.4), rng.uniform(0, np.pi)
    sx -= amp * np.sin(np.pi * turns * (yy - pad) / h + phase)
    if mode == "bulge":  # a swelling that magnifies part of the label
        cx, cy = pad + rng.uniform(0.3, 0.7) * w, pad + rng.uniform(0.3, 0.7) * h
        r = rng.uniform(0.45, 0.6) * min(w, h) * 1.3
        d = np.hypot(xx - cx, yy - cy) / r
        k = np.where(d < 1, 1 - rng.uniform(0.5, 0.65) * (1 - d) ** 2, 1.0)
        sx, sy = cx + (sx - cx) * k, cy + (yy - cy) * k
    elif mode == "sag":  # the top sags to one side and down, like melting plastic
        t = np.clip(1 - (yy - pad) / h, 0, 1) ** 2
        sx -= rng.choice((-1, 1)) * rng.uniform(0.12, 0.2) * w * t
        sy -= rng.uniform(0.05, 0.1) * h * t * np.sin(np.clip((xx - pad) / w, 0, 1) * np.pi)
    out = np.stack([ndimage.map_coordinates(arr[..., c], [sy, sx], order=1, mode="constant") for c in range(4)], -1)
    a = np.clip(out[..., 3:4], 1e-3, 255)
    out[..., :3] = np.where(out[..., 3:4] > 0, out[..., :3] * 255.0 / a, 0)
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGBA")
    return img.crop(img.getchannel("A").point(lambda v: 255 if v > 20 else 0).getbbox())


def _extend(product: Image.Image, rng: random.Random) -> tuple[Image.Image, tuple[int, int]]:
    """The product continued past an edge: a mirrored strip or a tiled partial copy.

    Returns the extended image and where the original's top-left corner sits inside it.
    """
    w, h = product.size
    mode = rng.choice(("mirror-top", "mirror-side", "tile-side"))
    if mode == "mirror-top":
        strip = product.crop((0, 0, w, int(h * rng.uniform(0.3, 0.5)))).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        out = Image.new("RGBA", (w, h + strip.height - 1), (0, 0, 0, 0))
        out.alpha_composite(strip, (0, 0))
        out.alpha_composite(product, (0, strip.height - 1))
        return out, (0, strip.height - 1)
    right = rng.random() < 0.5
    if mode == "mirror-side":
        cut = int(w * rng.uniform(0.35, 0.55))
        strip = product.crop((w - cut, 0, w, h) if right else (0, 0, cut, h)).transpose(
            Image.Transpose.FLIP_LEFT_RIGHT)
    else:
        cut = int(w * rng.uniform(0.45, 0.75))
        strip = product.crop((0, 0, cut, h) if right else (w - cut, 0, w, h))
    out = Image.new("RGBA", (w + cut - 1, h), (0, 0, 0, 0))
    at = (0, 0) if right else (cut - 1, 0)
    out.alpha_composite(strip, (w - 1, 0) if right else (0, 0))
    out.alpha_composite(product, at)
    return out, at


def _misplace(where: Placement, size: int, floor_y: int, rng: random.Random) -> Placement:
    """Float above the floor, get cut off by the frame, or take an implausible scale."""
    mode = rng.choice(("float", "cut-off", "tiny", "giant"))
    x0, y0, w, h = where.x0, where.y0, where.width, where.height
    if mode == "float":
        lift = int(rng.uniform(0.14, 0.24) * size)
        return Placement(x0, y0 - lift, w, h)
    if mode == "cut-off":
        out = rng.uniform(0.35, 0.55)
        side = rng.choice(("left", "right", "bottom"))
        if side == "left":
            return Placement(int(-out * w), y0, w, h)
        if side == "right":
            return Placement(int(size - (1 - out) * w), y0, w, h)
        return Placement(x0, int(size - (1 - out) * h), w, h)
    k = rng.uniform(0.25, 0.4) if mode == "tiny" else rng.uniform(0.9, 1.0) * size / max(w, h)
    nw, nh = max(4, int(w * k)), max(4, int(h * k))
    cx = x0 + w / 2 if mode == "tiny" else size / 2 + rng.uniform(-0.1, 0.1) * size
    return Placement(int(cx - nw / 2), floor_y - nh, nw, nh)


# --------------------------------------------------------------------------- one candidate


def _props(scene: Scene, where: Placement, size: int, rng: random.Random) -> list[tuple[str, Image.Image, Placement]]:
    """One or two props on the floor, beside the product (never in front of it)."""
    out = []
    depth = size - scene.horizon
    for side in rng.sample((-1, 1), rng.randint(1, 2)):
        kind = rng.choice(PROPS)
        base = scene.horizon + int(depth * rng.uniform(0.2, 0.45))
        ph = int(size * rng.uniform(0.14, 0.24) * (base - scene.horizon + 0.15 * size) / (0.4 * size))
        pw = ph if kind == "orange" else int(ph * rng.uniform(0.5, 0.8))
        gap = int(0.04 * size) + rng.randint(0, int(0.08 * size))
        x = where.x0 - pw - gap if side < 0 else where.x0 + where.width + gap
        if -pw // 2 < x < size - pw // 2 and ph > 6:
            out.append((kind, _prop(kind, pw, ph, scene.light, rng), Placement(x, base - ph, pw, ph)))
    return out


def _shadows(scene: Scene, silhouette: np.ndarray, floor_y: int, props: list[np.ndarray],
             prop_bases: list[int], directions: list[tuple[int, float]], shape: tuple[float, float]) -> np.ndarray:
    """Darkening of the floor (0-1): the props' shadows, and the product's along ``directions``.

    ``shape`` is (length, squash) of a cast shadow, the same for every object in the scene.
    """
    size = silhouette.shape[0]
    length, squash = shape
    shadow = np.zeros((size, size), np.float32)
    for sil, base in zip(props, prop_bases, strict=True):
        shadow = np.maximum(shadow, 0.6 * _cast_shadow(sil, base, scene.light, length, squash, size / 120,
                                                       scene.horizon))
        shadow = np.maximum(shadow, 0.75 * _contact_shadow(sil, base, size))
    for light, stretch in directions:
        shadow = np.maximum(shadow, 0.55 * _cast_shadow(silhouette, floor_y, light, length * stretch, squash,
                                                        size / 110, scene.horizon))
    if directions:
        shadow = np.maximum(shadow, 0.7 * _contact_shadow(silhouette, floor_y, size))
    return shadow


def _extended_box(where: Placement, original: Image.Image, extended: Image.Image, at: tuple[int, int]) -> Placement:
    """The box of ``extended`` when its ``original`` part fills ``where``."""
    k = where.height / original.height
    return Placement(round(where.x0 - at[0] * k), round(where.y0 - at[1] * k), max(1, round(extended.width * k)),
                     max(1, round(extended.height * k)))


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Pixel bounding box (left, top, right, bottom) of a boolean mask; None when it is empty."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def defect_regions(injected: set[str], product_alpha: np.ndarray, drawn_alpha: np.ndarray, shadow: np.ndarray,
                   true_shadow: np.ndarray) -> tuple[Region, ...]:
    """Where each injected defect is on the canvas, from the layers the renderer drew.

    The warped or misplaced product is its own box; an extension is what was drawn beyond the product;
    a wrong shadow is where the drawn shadow differs from the one the scene's light would cast (so a
    missing shadow is marked where it should have been).
    """
    size = product_alpha.shape[0]
    masks = {
        "appearance_deformation": product_alpha > 0.5,
        "placement_layout": product_alpha > 0.5,
        "extension_rationality": (drawn_alpha - product_alpha) > 0.5,
        "physical_shadow": np.abs(shadow - true_shadow) > 0.08,
    }
    out = []
    for dim in DIMENSIONS:
        box = _box(masks[dim]) if dim in injected else None
        if box is not None:
            out.append(Region.from_pixels(dim, *box, size, size))
    return tuple(out)


def render_one(job: Job, size: int) -> tuple[Rendered, np.ndarray]:
    """The candidate (image, actual layout, scene description) and the product's alpha on the canvas.

    The scene (materials, light, props, shadow shape, grain) and the defects draw from separate random
    streams, so a defective candidate is its clean twin with exactly the injected things changed.
    """
    srng, drng = random.Random(job.seed), random.Random(job.seed ^ 0x5EED5EED)
    nrng = np.random.default_rng(job.seed)
    injected = set(job.injected)
    planned = place(job.product, job.layout, size)
    floor_y = planned.y0 + planned.height
    scene = _scene(srng, size, floor_y)
    props = _props(scene, planned, size, srng)
    length, squash = srng.uniform(0.45, 0.9), srng.uniform(0.28, 0.45)
    product, where = job.product, planned
    if "appearance_deformation" in injected:
        product = _warp(product, drng)
        where = place(product, job.layout, size)
        where = Placement(where.x0, floor_y - where.height, where.width, where.height)
    if "placement_layout" in injected:
        where = _misplace(where, size, floor_y, drng)
    layout = layout_of(where, size)
    drawn, box = product, where
    if "extension_rationality" in injected:
        drawn, at = _extend(product, drng)
        box = _extended_box(where, product, drawn, at)
    silhouette = _alpha(layer := product_layer(drawn, box, size))
    # a floating product's shadow stays where it would stand; a cut-off one's lies where it is
    on_floor = np.roll(silhouette, max(0, floor_y - (where.y0 + where.height)), axis=0)
    directions: list[tuple[int, float]] = [(scene.light, 1.0)]
    if "physical_shadow" in injected:
        directions = drng.choice(([], [(-scene.light, 1.3)], [(scene.light, 1.0), (-scene.light, 0.8)]))
    prop_layers = [product_layer(img, at_box, size) for _, img, at_box in props]
    canvas = _background(scene, size, nrng)
    prop_alphas, prop_bases = [_alpha(p) for p in prop_layers], [b.y0 + b.height for _, _, b in props]
    stands_at = max(floor_y, where.y0 + where.height)
    shadow = _shadows(scene, on_floor, stands_at, prop_alphas, prop_bases, directions, (length, squash))
    canvas = canvas * (1 - shadow[..., None] * 0.85)
    for p in prop_layers:
        canvas = _over(canvas, p)
    lit = np.asarray(layer, np.float32)  # the product, shaded from the scene's light side
    xs = np.clip((np.arange(size, dtype=np.float32) - box.x0) / max(1, box.width), 0, 1)
    lit[..., :3] *= (0.96 + 0.12 * (xs - 0.5) * scene.light)[None, :, None]
    canvas = _over(canvas, Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8), "RGBA"))
    canvas = canvas + nrng.normal(0, 0.008, canvas.shape)  # sensor grain
    image = Image.fromarray((np.clip(canvas, 0, 1) * 255).round().astype(np.uint8), "RGB")
    prompt = f"a product photo on a {scene.material}, soft light from the {'left' if scene.light < 0 else 'right'}"
    if props:
        prompt += ", beside " + " and ".join(f"a {kind}" for kind, _, _ in props)
    true_shadow = shadow if "physical_shadow" not in injected else _shadows(
        scene, on_floor, stands_at, prop_alphas, prop_bases, [(scene.light, 1.0)], (length, squash))
    product_alpha = silhouette if drawn is product else _alpha(product_layer(product, where, size))
    regions = defect_regions(injected, product_alpha, silhouette, shadow, true_shadow)
    return Rendered(image=image, layout=layout, prompt=prompt, regions=regions), silhouette


class SyntheticBackend:
    def __init__(self, preset: Preset) -> None:
        self.preset = preset

    def identity(self) -> dict[str, Any]:
        return dict(backend="synthetic", model_id="aesdata-synthetic", revision=f"aesdata-{__version__}",
                    pipeline_class="aesdata.generate.synthetic", scheduler=None, diffusers_version=None,
                    torch_version=None, negative_prompt=None, steps=None, guidance=None, strength=None,
                    size=self.preset.size)

    def render(self, jobs: Sequence[Job]) -> list[Rendered]:
        return [render_one(job, self.preset.size)[0] for job in jobs]
