"""torchvision, imported in one place, with an error that names the fix when it cannot be used.

torchvision's compiled operators are built against one torch release: a torchvision beside
another torch (or PyPI's CUDA-linked torchvision beside a CPU-only torch) fails at import with
"operator torchvision::nms does not exist". `make setup` installs a matching pair (see the
README); `require()` turns either failure into one `VisionUnavailable` error that says what to
install.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["VisionUnavailable", "require"]

#: torch release -> the torchvision release built against it (the pairs the lab is set up with).
PAIRS = {"2.13": "0.28"}


class VisionUnavailable(ImportError):
    """torchvision is missing or does not match the installed torch; the message says what to
    install."""


def require(purpose: str = "images") -> ModuleType:
    """The torchvision module; VisionUnavailable naming `purpose` and the fix otherwise."""
    import torch

    release = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    pair = PAIRS.get(release)
    wanted = f"torchvision=={pair}.*" if pair else "the torchvision release built for it"
    try:
        import torchvision
    except ImportError:
        raise VisionUnavailable(
            f"{purpose} need torchvision, which is not installed: `make setup` installs the "
            f"torch/torchvision pair, or install {wanted} for your torch {torch.__version__} "
            "from the same index your torch came from"
        ) from None
    except RuntimeError as error:  # its compiled operators do not fit this torch
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise VisionUnavailable(
            f"{purpose} need torchvision, but the installed one does not match torch "
            f"{torch.__version__} ({cause}): install {wanted} from the index your torch came "
            "from (PyPI's torchvision is built for PyPI's torch; for the CPU build use "
            "--index-url https://download.pytorch.org/whl/cpu for both)"
        ) from None
    return torchvision
