"""Where slurmkit's data folders are, in a checkout or in an installed package.

The repository keeps ``templates/`` and ``playbooks/`` at its top level (the source of truth); a wheel carries
them as ``slurmkit/templates`` and ``slurmkit/playbooks`` (setup.py's build hook copies them in).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from slurmkit.errors import SlurmkitError

DATA_DIRS = ("templates", "playbooks")


def data_dir(name: str) -> Path:
    """The directory of data folder ``name`` (one of DATA_DIRS): the installed package's copy when there is one,
    else the checkout's top-level folder; SlurmkitError when neither exists."""
    if name not in DATA_DIRS:
        raise ValueError(f"unknown data folder {name!r}; one of {', '.join(DATA_DIRS)}")
    packaged = resources.files("slurmkit") / name
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise SlurmkitError(
        f"slurmkit's {name}/ is neither in the package ({packaged}) nor in a checkout ({checkout}): reinstall "
        "slurmkit from a wheel built by `pip wheel .`, or `pip install -e .` from a checkout"
    )
