"""A contact sheet: one PNG showing a few published samples (source, candidates A-D, answer, defects).

Defect regions are drawn as boxes on the candidates, one colour per dimension.

Reads rows as ``datasets`` returns them (PIL images, ``answer`` text, ``defects`` per slot), so it shows
what was published, not what the workspace holds. ``python -m aesdata.contact_sheet FOLDER OUT.png``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from aesdata.schema import SLOTS

SHORT = {
    "appearance_deformation": "appearance",
    "physical_shadow": "shadow",
    "placement_layout": "layout",
    "extension_rationality": "extension",
}
OK, BAD, INK, PAPER = (22, 128, 60), (190, 30, 45), (30, 30, 30), (250, 250, 248)
#: One colour per dimension for the region boxes (colour-blind safe: Okabe-Ito).
REGION_COLOURS = {
    "appearance_deformation": (230, 159, 0),
    "physical_shadow": (86, 180, 233),
    "placement_layout": (204, 121, 167),
    "extension_rationality": (0, 158, 115),
}


def draw_regions(draw: ImageDraw.ImageDraw, regions: Iterable[Mapping[str, Any]], left: int, top: int,
                 width: int, height: int) -> None:
    """Each region's box on a tile placed at (left, top) of size width x height, in its dimension's colour."""
    for region in regions:
        x, y, w, h = region["box"]
        box = (left + x * width, top + y * height, left + (x + w) * width - 1, top + (y + h) * height - 1)
        draw.rectangle(box, outline=REGION_COLOURS[region["dimension"]], width=2)


def render(rows: Iterable[Mapping[str, Any]], *, thumb: int = 160) -> Image.Image:
    """One band per row: header (sample id, answer), then source and A-D with their verdicts."""
    rows = list(rows)
    font = ImageFont.load_default(size=max(11, thumb // 11))
    pad, header, caption = 8, thumb // 6, thumb // 4
    band = header + thumb + caption + pad
    sheet = Image.new("RGB", (pad + 5 * (thumb + pad), pad + band * len(rows) + header), PAPER)
    draw = ImageDraw.Draw(sheet)
    x = pad  # legend: which colour marks which dimension's region
    draw.text((x, pad + band * len(rows)), "regions:", fill=INK, font=font)
    x += int(draw.textlength("regions: ", font=font))
    for dim, colour in REGION_COLOURS.items():
        top = pad + band * len(rows)
        draw.rectangle((x, top + 2, x + header // 2, top + header // 2 + 2), outline=colour, width=2)
        x += header // 2 + 4
        draw.text((x, top), SHORT[dim], fill=colour, font=font)
        x += int(draw.textlength(SHORT[dim] + "   ", font=font))
    for i, row in enumerate(rows):
        y = pad + i * band
        draw.text((pad, y), f"{row['sample_id']}   answer: {row['answer']}", fill=INK, font=font)
        verdicts = (row["defects"][s] for s in SLOTS)
        regions = row.get("regions") or {}
        images = [("source", row["source"], None), *zip(SLOTS, row["candidates"], verdicts, strict=True)]
        for k, (name, img, defects) in enumerate(images):
            x = pad + k * (thumb + pad)
            tile = ImageOps.contain(img.convert("RGB"), (thumb, thumb))
            sheet.paste(tile, (x, y + header))
            if defects is not None:
                draw_regions(draw, regions.get(name) or (), x, y + header, tile.width, tile.height)
            if defects is None:
                label, colour = "source", INK
            elif defects:
                label, colour = f"{name}: " + ", ".join(SHORT[d] for d in defects), BAD
            else:
                label, colour = f"{name}: ok", OK
            if defects is not None:
                draw.rectangle((x, y + header, x + thumb - 1, y + header + thumb - 1), outline=colour, width=3)
            draw.text((x, y + header + thumb + 2), label, fill=colour, font=font)
    return sheet


def write(rows: Iterable[Mapping[str, Any]], out: Path, *, thumb: int = 160) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    render(rows, thumb=thumb).save(out, format="PNG", optimize=True)
    return out


def main(argv: list[str]) -> int:
    """``python -m aesdata.contact_sheet FOLDER OUT.png [N]``: the first N rows of a published folder."""
    import datasets

    folder, out = argv[0], Path(argv[1])
    n = int(argv[2]) if len(argv) > 2 else 6
    ds = datasets.load_dataset(folder)
    split = "train" if "train" in ds else next(iter(ds))
    write(ds[split].select(range(min(n, len(ds[split])))), out)
    print(f"contact sheet: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
