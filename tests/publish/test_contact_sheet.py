"""The contact sheet shows published rows: one band per sample, each candidate framed by its verdict."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from aesdata import contact_sheet
from aesdata.publish.stage import publish
from aesdata.schema import SLOTS
from aesdata.workspace import Workspace
from tests.factories import make_samples
from tests.publish.helpers import load


def test_frames_follow_the_published_defects(ws: Workspace, tmp_path: Path) -> None:
    make_samples(ws, 6)
    publish(ws, "1.0.0", out=tmp_path / "v1", test_fraction=0)
    rows = list(load(tmp_path / "v1")["train"].select(range(3)))
    out = contact_sheet.write(rows, tmp_path / "sheet.png", thumb=96)

    sheet = Image.open(out).convert("RGB")
    pad, header, caption = 8, 96 // 6, 96 // 4
    assert sheet.size == (pad + 5 * (96 + pad), pad + 3 * (header + 96 + caption + pad) + header)  # + legend
    for i, row in enumerate(rows):
        y = pad + i * (header + 96 + caption + pad) + header
        for k, slot in enumerate(SLOTS, start=1):
            frame = sheet.getpixel((pad + k * (96 + pad), y + 48))  # left edge of the candidate's frame
            assert frame == (contact_sheet.BAD if row["defects"][slot] else contact_sheet.OK), (i, slot)


def test_region_boxes_are_drawn_on_their_candidate_in_their_dimension_colour(tmp_path: Path) -> None:
    tile = Image.new("RGB", (100, 100), (255, 255, 255))
    row = {"sample_id": "s", "answer": "B,C,D", "source": tile, "candidates": [tile] * 4,
           "defects": {"A": ["physical_shadow"], "B": [], "C": [], "D": []},
           "regions": {"A": [{"dimension": "physical_shadow", "box": [0.5, 0.5, 0.25, 0.25]}], "B": [], "C": [],
                       "D": []}}
    sheet = contact_sheet.render([row], thumb=100)
    pad, header = 8, 100 // 6
    left, top = pad + (100 + pad), pad + header  # tile A
    assert sheet.getpixel((left + 50, top + 60)) == contact_sheet.REGION_COLOURS["physical_shadow"]
    assert sheet.getpixel((left + 62, top + 62)) == (255, 255, 255)  # inside the box: the image itself
    assert sheet.getpixel((left + 20, top + 20)) == (255, 255, 255)
