"""Every format Pillow opens is ingested; other files are counted; library warnings stay off the screen."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesdata.cli.main import app
from aesdata.ingest import WARNINGS_LOG, image_suffixes, ingest
from tests.factories import box_image

# format -> extension, each file written by Pillow itself (PSD, which Pillow only reads, is built by hand)
WRITTEN = {"AVIF": ".avif", "JPEG2000": ".jp2", "TGA": ".tga", "PPM": ".ppm", "SGI": ".sgi", "PCX": ".pcx",
           "QOI": ".qoi", "DDS": ".dds", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
CORRUPT_EXIF = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\x00\x00\x00\x01\x00\x01"


def psd_bytes(img: Image.Image) -> bytes:
    """A minimal Photoshop file: header, empty sections, raw planar RGB data."""
    rgb = np.asarray(img.convert("RGB"))
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, img.height, img.width, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + rgb.transpose(2, 0, 1).tobytes()


def corrupt_exif_jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    box_image(seed, 96).save(buf, "JPEG", exif=CORRUPT_EXIF, quality=95)
    return buf.getvalue()


def test_extensions_come_from_pillow():
    suffixes = image_suffixes()
    assert {".avif", ".jp2", ".tga", ".ppm", ".psd", ".png", ".jpg", ".tiff", ".qoi"} <= suffixes
    assert ".pdf" not in suffixes, "Pillow writes PDF but cannot open it"


def test_every_pillow_format_is_ingested_and_other_files_counted(ws, tmp_path):
    folder = tmp_path / "shoot"
    (folder / "deeper").mkdir(parents=True)
    for i, (fmt, ext) in enumerate(WRITTEN.items()):
        box_image(700 + i, 96).save(folder / "deeper" / f"img{i}{ext}", fmt)
    (folder / "layered.psd").write_bytes(psd_bytes(box_image(699, 96)))
    (folder / "notes.txt").write_text("not an image")
    (folder / "contact.pdf").write_bytes(b"%PDF-1.4 not opened by Pillow")
    (folder / "deeper" / "raw.cr3").write_bytes(b"\x00" * 64)

    summary = ingest(ws, [folder], recursive=True)

    assert summary.added == len(WRITTEN) + 1, summary
    assert (summary.rejected, summary.skipped_extension) == (0, 3)
    origins = {Path(o).suffix for (o,) in ws.db.execute("SELECT origin FROM sources")}
    assert origins == {*WRITTEN.values(), ".psd"}
    psd = next(sid for sid, o in ws.db.execute("SELECT id, origin FROM sources") if o.endswith(".psd"))
    assert np.array_equal(np.asarray(ws.blobs.open(psd)), np.asarray(box_image(699, 96))), "PSD pixels kept"


def test_without_recursive_subfolders_are_not_counted_as_skipped(ws, tmp_path):
    folder = tmp_path / "flat"
    (folder / "sub").mkdir(parents=True)
    box_image(1).save(folder / "a.tga")
    box_image(2).save(folder / "sub" / "b.tga")
    (folder / "readme.md").write_text("#")
    summary = ingest(ws, [folder])
    assert (summary.added, summary.skipped_extension) == (1, 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_library_warnings_go_to_the_log_not_the_screen(ws, tmp_path, capfd, workers):
    folder = tmp_path / "warned"
    folder.mkdir()
    for i in range(3):
        (folder / f"exif{i}.jpg").write_bytes(corrupt_exif_jpeg(40 + i))
    box_image(50).save(folder / "clean.png")
    summary = ingest(ws, [folder], workers=workers)
    assert (summary.added, summary.library_warnings) == (4, 3)
    log = (ws.root / WARNINGS_LOG).read_text()
    assert log.count("Corrupt EXIF data") == 3 and all(f"exif{i}.jpg" in log for i in range(3))
    assert "clean.png" not in log
    out, err = capfd.readouterr()
    assert "Corrupt EXIF" not in out + err


def test_cli_prints_at_most_one_line_per_file(cli, ws_path, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "exif.jpg").write_bytes(corrupt_exif_jpeg(60))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "list.csv").write_text("a,b")
    result = cli.invoke(app, ["ingest", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    assert "Corrupt EXIF" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len([line for line in lines if "broken.png" in line]) == 1
    assert not any("exif.jpg" in line for line in lines)
    assert '"skipped_extension": 1' in result.stdout and '"library_warnings": 1' in result.stdout
