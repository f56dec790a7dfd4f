"""Any image Pillow opens, as RGB values in [0, 1]: one rule per mode, Pillow's own conversions
wherever they are right.

    mode                          becomes
    1, L, P, RGB, RGBX, CMYK,     Image.convert("RGB"), then value / 255 (YCbCr, HSV and LAB
    YCbCr, HSV, LAB               through Pillow's colour conversions; CMYK by Pillow's formula,
                                  ignoring any embedded ICC profile)
    LA, La, PA, RGBA, RGBa, and   alpha-composited over white with Image.alpha_composite: a fully
    1/L/P/RGB with a transparent  transparent pixel is white, whatever colour it stores
    colour (info["transparency"])
    I;16, I;16L, I;16B, I;16N     grey value / 65535 (Pillow's convert("RGB") clips them at 255,
                                  which turns a 16-bit image white)
    I                             grey value / 65535: Pillow's mode for 16-bit sources; values
                                  outside [0, 65535] raise a ValueError
    F                             the grey values themselves; outside [0, 1] (or NaN) raise a
                                  ValueError

`as_pixels(image)` returns an 8-bit "RGB" image or, for the high-depth grey modes, an "F" image
in [0, 1], so resizing keeps every bit of a 16-bit image; `to_array` turns either into float32
[H, W, 3].

>>> from PIL import Image
>>> grey16 = Image.new("I;16", (2, 1), 20000)
>>> round(float(to_array(as_pixels(grey16))[0, 0, 0]), 3)
0.305
>>> to_array(as_pixels(Image.new("RGBA", (1, 1), (255, 0, 0, 0))))[0, 0].tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # Pillow is imported where images are decoded
    import PIL.Image

HIGH_DEPTH = {
    "I;16": 65535.0,
    "I;16L": 65535.0,
    "I;16B": 65535.0,
    "I;16N": 65535.0,
    "I": 65535.0,
    "F": 1.0,
}
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
EIGHT_BIT = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "HSV", "LAB", *ALPHA_MODES)
WHITE = (255, 255, 255, 255)


def as_pixels(image: PIL.Image.Image) -> PIL.Image.Image:
    """`image` (any mode in EIGHT_BIT or HIGH_DEPTH) as an "RGB" image, or an "F" image with
    grey values in [0, 1] for the high-depth modes. Raises ValueError naming the mode when it
    is not one of those, or when I / F values fall outside their range."""
    from PIL import Image

    if image.mode in HIGH_DEPTH:
        grey = np.asarray(image, dtype=np.float64)
        top = HIGH_DEPTH[image.mode]
        low, high = (float(grey.min()), float(grey.max())) if grey.size else (0.0, 0.0)
        if not (low >= 0.0 and high <= top):  # also catches NaN
            raise ValueError(
                f"mode {image.mode} image with values in [{low:g}, {high:g}]; dmllab reads "
                f"this mode as grey values in [0, {top:g}] — save it as an 8- or 16-bit PNG"
            )
        return Image.fromarray((grey / top).astype(np.float32))
    if image.mode not in EIGHT_BIT:
        raise ValueError(
            f"image mode {image.mode!r} is not supported; save it as RGB or 16-bit grey PNG "
            f"(supported modes: {', '.join((*EIGHT_BIT, *HIGH_DEPTH))})"
        )
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = (image.convert("LA") if image.mode == "La" else image).convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba).convert("RGB")
    return image.convert("RGB")


def to_array(image: PIL.Image.Image) -> np.ndarray:
    """An "RGB" or "F" image from `as_pixels` as float32 [H, W, 3] in [0, 1] (grey repeated)."""
    if image.mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(image, dtype=np.float32) / np.float32(255.0)
