"""A folder of awkward inputs, generated: every kind of file ingest must take or refuse."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.factories import box_image

#: file name -> expected outcome ("added", "exact", "near", "rejected")
EXPECTED = {
    "a_good.png": "added",
    "b_good.jpg": "added",
    "c_good.webp": "added",
    "d_rgba.png": "added",
    "e_cmyk.jpg": "added",
    "f_16bit.png": "added",
    "g_palette.gif": "added",
    "h_exif_rotated.jpg": "added",
    "i_truncated.jpg": "rejected",
    "j_empty.png": "rejected",
    "k_text.png": "rejected",
    "l_bomb.png": "rejected",
    "m_exact_copy.png": "exact",
    "n_near_copy.jpg": "near",
}


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge image (its data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def _product(seed: int, size: int = 128) -> Image.Image:
    return box_image(seed, size)


def build(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _product(1).save(folder / "a_good.png")
    _product(2).save(folder / "b_good.jpg", quality=92)
    _product(3).save(folder / "c_good.webp")
    rgba = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse((30, 20, 100, 110), fill=(200, 30, 30, 255))
    rgba.save(folder / "d_rgba.png")
    _product(5).convert("CMYK").save(folder / "e_cmyk.jpg")
    ramp = (np.add.outer(np.arange(128), np.arange(128)) * 257).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "f_16bit.png")  # uint16 -> a 16-bit greyscale PNG
    _product(7).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "g_palette.gif")
    # EXIF orientation 6: stored landscape, displayed portrait
    exif = Image.Exif()
    exif[0x0112] = 6
    box_image(11, 160).crop((0, 0, 160, 96)).save(folder / "h_exif_rotated.jpg", exif=exif.tobytes())
    buf = io.BytesIO()
    _product(9, 256).save(buf, format="JPEG")
    (folder / "i_truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "j_empty.png").write_bytes(b"")
    (folder / "k_text.png").write_text("this is not an image\n")
    (folder / "l_bomb.png").write_bytes(_bomb_png(100_000, 100_000))
    (folder / "m_exact_copy.png").write_bytes((folder / "a_good.png").read_bytes())
    _product(1).resize((110, 110)).save(folder / "n_near_copy.jpg", quality=80)
    return folder
