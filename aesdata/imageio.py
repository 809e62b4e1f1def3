"""Safe decoding of untrusted images into the two modes aesdata stores: RGB and RGBA.

Corrupt, truncated, huge and odd-mode files are expected input. Every refusal is an
:class:`~aesdata.errors.InputRejected` with a one-line reason; nothing here loads more pixels
than ``max_pixels`` (Pillow's decompression-bomb guard stays on and is tightened to that limit).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from aesdata.errors import InputRejected

ImageFile.LOAD_TRUNCATED_IMAGES = False


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float greyscale to 8-bit by range, not by clipping (Pillow's convert clips)."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.max(initial=0) > 255):
        arr = arr / 257.0
    elif img.mode == "F":
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
        arr = (arr - lo) / ((hi - lo) or 1.0) * 255.0
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")


def normalise(img: Image.Image) -> Image.Image:
    """EXIF orientation applied; palette/CMYK/16-bit/LA/1-bit converted; alpha kept (it marks the product)."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("RGB", "RGBA"):
        return img
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in ("LA", "PA", "La", "RGBa"):
        return img.convert("RGBA")
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _to_8bit(img).convert("RGB")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, L, 1


def decode(data: bytes, *, origin: str, max_pixels: int) -> Image.Image:
    """Decode ``data`` fully, or raise :class:`InputRejected` naming ``origin`` and the reason."""
    if not data:
        raise InputRejected(f"{origin}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise InputRejected(
                    f"{origin}: too large: {width}x{height} = {width * height} pixels (limit {max_pixels})"
                )
            img.load()
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            return normalise(img)
    except InputRejected:
        raise
    except UnidentifiedImageError:
        raise InputRejected(f"{origin}: not an image (format not recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputRejected(f"{origin}: too large (decompression bomb guard): {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = f"truncated ({reason})"
        raise InputRejected(f"{origin}: corrupt image: {reason}") from None


def read_file(path: Path, *, max_bytes: int) -> bytes:
    """Read a file, refusing (without reading) one larger than ``max_bytes``."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputRejected(f"{path}: file too large: {size} bytes (limit {max_bytes})")
        return path.read_bytes()
    except OSError as exc:
        raise InputRejected(f"{path}: cannot read: {exc.strerror or exc}") from None


def flatten(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB view of an image, transparent areas composited on ``background`` (for hashing/display)."""
    if img.mode != "RGBA":
        return img.convert("RGB")
    base = Image.new("RGB", img.size, background)
    base.paste(img, mask=img.getchannel("A"))
    return base
