"""``aesdata demo-sources``: procedurally drawn product photos, so a demo needs no outside data.

Boxes, bottles, tubes and blister packs with label text, shaded as if lit from the upper left, on a
studio background. Written as RGBA: alpha marks the product (the background stays in the colour
channels, so viewers that ignore alpha show a studio shot); ``alpha=False`` writes plain RGB on the
studio background, which the background-estimate mask rule handles. Deterministic per seed.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from aesdata.blobs import encode_png
from aesdata.imageio import flatten

SIZE = 512
SS = 2  # supersampling factor: drawn at 2x, downsampled, for smooth edges
BRANDS = ("VITAMAX", "Aqualis", "DermaCalm", "NutriPlus", "Solara", "PureLeaf", "Zentra", "Calmex", "Lumina",
          "Orbisol", "Kindra", "Novacare")
LINES = ("Vitamin C 500 mg", "Hydrating Lotion", "Daily Multivitamin", "Pain Relief Gel", "Herbal Shampoo",
         "Allergy Relief", "Sun Cream SPF 50", "Omega-3 Fish Oil", "Hand Cream", "Cough Syrup")
AMOUNTS = ("30 tablets", "200 ml", "50 g", "60 capsules", "100 ml", "12 sachets", "250 ml", "75 ml")
PALETTE = ((38, 92, 170), (200, 52, 60), (46, 140, 90), (240, 170, 40), (120, 70, 160), (20, 150, 160),
           (230, 110, 40), (60, 60, 70), (240, 240, 236), (170, 200, 60))
KINDS = ("box", "bottle", "tube", "blister")
#: Demo photos differ pairwise by more than this many pHash bits (of 64).
DISTINCT_BITS = 10


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def _ink(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Dark text on light colours, white on dark ones."""
    return (30, 30, 36) if sum(background) >= 450 else (255, 255, 255)


def _text(draw: ImageDraw.ImageDraw, centre: tuple[float, float], text: str, px: int, fill: tuple[int, ...],
          max_width: float) -> None:
    """Centred text, shrunk until it fits ``max_width``."""
    while px > 6:
        font = _font(px)
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        if x1 - x0 <= max_width:
            draw.text((centre[0] - (x1 - x0) / 2 - x0, centre[1] - (y1 - y0) / 2 - y0), text, font=font, fill=fill)
            return
        px -= 2


def _label(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], rng: random.Random,
           ink: tuple[int, int, int], accent: tuple[int, int, int]) -> None:
    """Brand, product line and amount, stacked in ``box``."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    _text(draw, (cx, y0 + h * 0.28), rng.choice(BRANDS), int(h * 0.26), ink, w * 0.88)
    draw.rectangle((x0 + w * 0.12, y0 + h * 0.5, x1 - w * 0.12, y0 + h * 0.53), fill=accent)
    _text(draw, (cx, y0 + h * 0.66), rng.choice(LINES), int(h * 0.13), ink, w * 0.85)
    _text(draw, (cx, y0 + h * 0.85), rng.choice(AMOUNTS), int(h * 0.1), ink, w * 0.6)


def _shade_cylinder(img: Image.Image, x0: float, x1: float, strength: float = 0.35) -> Image.Image:
    """Round-body shading across x (lit from the left) with a soft specular stripe."""
    arr = np.asarray(img, np.float32)
    xs = np.clip((np.arange(arr.shape[1], dtype=np.float32) - x0) / max(1.0, x1 - x0), 0, 1)
    t = xs * 2 - 1
    light = 1.0 - strength * (0.5 + 0.5 * t) ** 1.6 + 0.08 * np.cos(t * np.pi / 2)
    spec = 0.35 * np.exp(-((xs - 0.24) / 0.05) ** 2)
    arr[..., :3] = arr[..., :3] * light[None, :, None] + 255 * spec[None, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")


def _box(rng: random.Random, s: int) -> Image.Image:
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    colour, accent = rng.sample(PALETTE, 2)
    w, h = s * rng.uniform(0.36, 0.5), s * rng.uniform(0.55, 0.78)
    depth = w * rng.uniform(0.28, 0.45)
    x0, y1 = (s - w - depth * 0.7) / 2, s * 0.92
    y0 = y1 - h
    dx, dy = depth * 0.7, depth * 0.45
    front = (x0, y0, x0 + w, y1)
    d.polygon([(x0 + w, y0), (x0 + w + dx, y0 - dy), (x0 + w + dx, y1 - dy), (x0 + w, y1)],
              fill=tuple(int(c * 0.72) for c in colour))  # side, in shade
    d.polygon([(x0, y0), (x0 + dx, y0 - dy), (x0 + w + dx, y0 - dy), (x0 + w, y0)],
              fill=tuple(min(255, int(c * 1.15) + 12) for c in colour))  # top, lit
    d.rectangle(front, fill=colour)
    band = (x0 + w * 0.06, y0 + h * 0.3, x0 + w * 0.94, y0 + h * 0.78)
    d.rectangle(band, fill=(250, 250, 247))
    _label(d, band, rng, (30, 30, 36), accent)
    d.ellipse((x0 + w * 0.08, y0 + h * 0.06, x0 + w * 0.08 + h * 0.16, y0 + h * 0.22), fill=accent)
    _text(d, (x0 + w * 0.62, y0 + h * 0.14), rng.choice(("NEW", "PLUS", "FORTE", "MAX")), int(h * 0.07),
          _ink(colour), w * 0.5)
    return img


def _bottle(rng: random.Random, s: int) -> Image.Image:
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    colour, accent, cap = rng.sample(PALETTE, 3)
    w, h = s * rng.uniform(0.3, 0.42), s * rng.uniform(0.72, 0.86)
    x0, y1 = (s - w) / 2, s * 0.93
    y0 = y1 - h
    neck_w, neck_h, cap_h = w * rng.uniform(0.32, 0.45), h * 0.1, h * 0.12
    shoulder = y0 + cap_h + neck_h + h * 0.12
    d.rounded_rectangle((x0, shoulder - h * 0.1, x0 + w, y1), radius=w * 0.14, fill=colour)
    d.ellipse((x0, shoulder - h * 0.14, x0 + w, shoulder + h * 0.1), fill=colour)
    nx0 = (s - neck_w) / 2
    d.rectangle((nx0, y0 + cap_h - 2, nx0 + neck_w, shoulder - h * 0.05), fill=colour)
    d.rounded_rectangle((nx0 - neck_w * 0.08, y0, nx0 + neck_w * 1.08, y0 + cap_h), radius=neck_w * 0.12, fill=cap)
    for k in range(1, 8):
        gx = nx0 - neck_w * 0.08 + k * neck_w * 1.16 / 8
        d.line((gx, y0 + 3, gx, y0 + cap_h - 3), fill=tuple(int(c * 0.8) for c in cap), width=max(1, s // 300))
    band = (x0 + 1, shoulder + h * 0.12, x0 + w - 1, y1 - h * 0.1)
    d.rectangle(band, fill=(248, 246, 240) if colour != (240, 240, 236) else accent)
    _label(d, band, rng, (30, 30, 36), accent)
    return _shade_cylinder(img, x0, x0 + w)


def _tube(rng: random.Random, s: int) -> Image.Image:
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    colour, accent, cap = rng.sample(PALETTE, 3)
    w, h = s * rng.uniform(0.22, 0.3), s * rng.uniform(0.72, 0.86)
    cx, y1 = s / 2, s * 0.93
    y0 = y1 - h
    cap_h, crimp_h = h * 0.13, h * 0.06
    top_w = w * 1.25  # flattened crimp end is wider than the round body
    d.polygon([(cx - top_w / 2, y0 + crimp_h), (cx + top_w / 2, y0 + crimp_h), (cx + w / 2, y1 - cap_h),
               (cx - w / 2, y1 - cap_h)], fill=colour)
    d.rectangle((cx - top_w / 2, y0, cx + top_w / 2, y0 + crimp_h), fill=tuple(int(c * 0.9) for c in colour))
    for k in range(1, 6):
        yy = y0 + k * crimp_h / 6
        d.line((cx - top_w / 2, yy, cx + top_w / 2, yy), fill=tuple(int(c * 0.7) for c in colour), width=1)
    d.rounded_rectangle((cx - w * 0.42, y1 - cap_h, cx + w * 0.42, y1), radius=w * 0.08, fill=cap)
    band = (cx - w * 0.5, y0 + h * 0.25, cx + w * 0.5, y0 + h * 0.72)
    _label(d, band, rng, _ink(colour), accent)
    return _shade_cylinder(img, cx - top_w / 2, cx + top_w / 2, 0.28)


def _blister(rng: random.Random, s: int) -> Image.Image:
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    accent, pill = rng.sample(PALETTE, 2)
    rows, cols = rng.choice(((5, 2), (4, 2), (5, 3), (3, 2)))
    w, h = s * rng.uniform(0.42, 0.55), s * rng.uniform(0.7, 0.85)
    x0, y1 = (s - w) / 2, s * 0.93
    y0 = y1 - h
    d.rounded_rectangle((x0, y0, x0 + w, y1), radius=s * 0.02, fill=(206, 208, 212))  # foil card
    head = h * 0.22
    d.rectangle((x0, y0 + s * 0.02, x0 + w, y0 + head), fill=accent)
    d.rectangle((x0, y0, x0 + w, y0 + s * 0.02), fill=accent)
    _label(d, (x0, y0, x0 + w, y0 + head), rng, _ink(accent), _ink(accent))
    cw, ch = w / cols, (h - head) / rows
    for r in range(rows):
        for c in range(cols):
            bx, by = x0 + c * cw + cw * 0.15, y0 + head + r * ch + ch * 0.15
            bw, bh = cw * 0.7, ch * 0.7
            d.rounded_rectangle((bx, by, bx + bw, by + bh), radius=min(bw, bh) * 0.45, fill=(236, 238, 242))
            d.ellipse((bx + bw * 0.18, by + bh * 0.22, bx + bw * 0.82, by + bh * 0.78), fill=pill)
            d.ellipse((bx + bw * 0.3, by + bh * 0.3, bx + bw * 0.42, by + bh * 0.38), fill=(246, 246, 246))
            d.line((bx + bw * 0.5, by + bh * 0.25, bx + bw * 0.5, by + bh * 0.75),
                   fill=tuple(int(v * 0.8) for v in pill), width=max(1, s // 256))
    arr = np.asarray(img, np.float32)  # foil sheen: a soft diagonal gradient
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    arr[..., :3] *= (1.05 - 0.12 * (xx + yy) / 2)[..., None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")


def _studio(rng: random.Random, s: int) -> Image.Image:
    """A seamless studio backdrop: light grey with a tint, a soft spot of light, darker toward the floor."""
    tint = rng.choice((np.array([3, 1, -2]), np.array([-2, 0, 3]), np.array([0, 0, 0]), np.array([2, 3, -1])))
    base = np.array([rng.uniform(205, 242)] * 3) + tint * rng.uniform(1, 4)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    gx, gy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.6)
    glow = 1.0 + 0.07 * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / 0.1) - 0.05 * yy
    return Image.fromarray(np.clip(base * glow[..., None], 0, 255).astype(np.uint8), "RGB")


def draw_product(seed: int, *, size: int = SIZE, alpha: bool = True) -> Image.Image:
    """One product photo: RGBA (alpha = product) or RGB on the studio background."""
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)] if rng.random() < 0.5 else rng.choice(KINDS)
    big = {"box": _box, "bottle": _bottle, "tube": _tube, "blister": _blister}[kind](rng, size * SS)
    # framing varies like real shots: the product a bit smaller or larger, off-centre
    k = rng.uniform(0.55, 1.0)
    side = round(size * k)
    product = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    product.alpha_composite(big.resize((side, side), Image.Resampling.LANCZOS),
                            (round((size - side) / 2 + rng.uniform(-0.2, 0.2) * size * k), round((size - side) * 0.7)))
    studio = _studio(rng, size).convert("RGBA")
    shot = Image.alpha_composite(studio, product)
    if not alpha:
        return shot.convert("RGB")
    shot.putalpha(product.getchannel("A"))
    return shot


def write_demo_sources(folder: Path, n: int, *, seed: int = 0, alpha: bool = True) -> list[Path]:
    """Write ``n`` product photos to ``folder`` (``product_0000.png``...); existing equal files are kept.

    A drawing within ``DISTINCT_BITS`` of an earlier one by pHash is passed over, so ingest (whose
    near-duplicate distance defaults to 6) accepts every photo as its own source.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    kept: list[imagehash.ImageHash] = []
    for k in itertools.count(seed * 1_000_003):
        if len(paths) == n:
            break
        img = draw_product(k, alpha=alpha)
        phash = imagehash.phash(flatten(img))
        if any(phash - other <= DISTINCT_BITS for other in kept):
            continue
        kept.append(phash)
        path = folder / f"product_{len(paths):04d}.png"
        data = encode_png(img)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        paths.append(path)
    return paths
