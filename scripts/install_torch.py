"""Install torch and torchvision as one matched pair (the pins in constraints/cpu.txt), for
`make setup`. Run by the virtual environment's Python.

- Both already import and fit each other: nothing is installed (a GPU user's own builds are kept).
- Another torch release is installed without a working torchvision: it is kept, and the message
  says which torchvision to install for it (only image augmentation and ResNet trunks need one).
- Otherwise the pinned pair is installed: from TORCH_INDEX when it is set (e.g. PyTorch's CPU
  index, https://download.pytorch.org/whl/cpu, where the small CPU builds live), else from PyPI,
  whose Linux builds are CUDA builds that also run on a CPU. `torch===X` (exact) keeps pip from
  pairing PyPI's torchvision with a local CPU-only torch build (`X+cpu`), which it cannot load.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PINS = Path(__file__).resolve().parents[1] / "constraints" / "cpu.txt"


def pins() -> dict[str, str]:
    """{"torch": version, "torchvision": version} from constraints/cpu.txt."""
    found = {}
    for line in PINS.read_text().splitlines():
        match = re.fullmatch(r"\s*(torch|torchvision)==([\w.]+)\s*(#.*)?", line)
        if match:
            found[match[1]] = match[2]
    return found


def probe() -> tuple[str | None, bool]:
    """(the installed torch's version or None, whether torchvision imports beside it)."""
    code = (
        "import torch\nprint(torch.__version__)\n"
        "try:\n    import torchvision\n    print('vision')\nexcept Exception:\n    pass\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = result.stdout.split()
    return (lines[0] if lines else None), "vision" in lines


def main() -> int:
    """Install the pair when needed (module docstring); 0 when a working pair is there."""
    pinned = pins()
    torch, vision = probe()
    if torch is not None and vision:
        return 0
    release = torch.split("+")[0] if torch else None
    if release is not None and release != pinned["torch"]:
        print(
            f"dmllab set-up: keeping your torch {torch}, which has no working torchvision; "
            "image augmentation and the ResNet trunks need the torchvision release built for it "
            "(install it from the index your torch came from)"
        )
        return 0
    index = os.environ.get("TORCH_INDEX", "")
    if index:
        wanted = [f"torch=={pinned['torch']}", f"torchvision=={pinned['torchvision']}"]
        extra = ["--index-url", index]
    else:
        wanted = [f"torch==={pinned['torch']}", f"torchvision=={pinned['torchvision']}"]
        extra = []
    command = [sys.executable, "-m", "pip", "install", "--quiet", *extra, *wanted]
    print("dmllab set-up:", " ".join(command[2:]))
    subprocess.run(command, check=True)
    if probe()[1]:
        return 0
    print("dmllab set-up: torchvision still does not import; see the README's set-up section")
    return 1


if __name__ == "__main__":
    sys.exit(main())
