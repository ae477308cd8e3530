"""Where slurmkit's data folders are, in a checkout or in an installed package; the one Jinja environment factory.

The repository keeps ``templates/`` and ``playbooks/`` at its top level (the source of truth); a wheel carries
them as ``slurmkit/templates`` and ``slurmkit/playbooks`` (setup.py's build hook copies them in).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from slurmkit.errors import SlurmkitError

if TYPE_CHECKING:
    import jinja2

DATA_DIRS = ("templates", "playbooks")
PROJECT = "slurmkit"


def package_dir() -> Path:
    """The folder of the imported ``slurmkit`` package (in a checkout, an editable install or site-packages)."""
    return Path(str(resources.files(PROJECT)))


def checkout_root(package: Path | None = None) -> Path | None:
    """The checkout the package was imported from: the folder holding the package folder and a ``pyproject.toml``
    whose ``[project]`` is named ``slurmkit``; None when the package is not in a checkout (an installed wheel:
    the folder above it is site-packages, whose ``templates/`` would be some other package's)."""
    package = package or package_dir()
    root = package.parent
    try:
        meta = tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    project = meta.get("project")
    return root if isinstance(project, dict) and project.get("name") == PROJECT else None


def data_dir(name: str) -> Path:
    """The directory of data folder ``name`` (one of DATA_DIRS): the installed package's copy when there is one,
    else the checkout's top-level folder (see :func:`checkout_root`); SlurmkitError when neither exists."""
    if name not in DATA_DIRS:
        raise ValueError(f"unknown data folder {name!r}; one of {', '.join(DATA_DIRS)}")
    package = package_dir()
    packaged = package / name
    if packaged.is_dir():
        return packaged
    root = checkout_root(package)
    if root is not None and (root / name).is_dir():
        return root / name
    where = f"a checkout ({root / name})" if root is not None else f"a checkout (no slurmkit pyproject.toml beside {package})"
    raise SlurmkitError(
        f"slurmkit's {name}/ is neither in the package ({packaged}) nor in {where}: reinstall "
        "slurmkit from a wheel built by `pip wheel .`, or `pip install -e .` from a checkout"
    )


def jinja_env(templates: bool = False, *, autoescape: bool = False, strict: bool = True,
              filters: Mapping[str, Callable[..., Any]] | None = None) -> "jinja2.Environment":
    """The Jinja environment every renderer of slurmkit uses.

    ``templates=True``: files are loaded from :func:`data_dir` ``("templates")`` and laid out as text files
    are written there (``keep_trailing_newline``, ``trim_blocks``, ``lstrip_blocks``: a ``{% for %}`` line leaves
    no blank line). ``templates=False``: no loader (``env.from_string``) and Jinja's default whitespace.
    ``strict``: an undefined name is an error (``StrictUndefined``), else it renders empty. ``autoescape``: HTML
    escaping (the bench report); never for configs, scripts or playbooks. ``filters`` are added by name.

    Today's users: configs (``render``: templates, filter ``kv``), sbatch scripts (``jobs``: templates),
    playbook values (``provision``: the defaults), the HTML report (``bench.report``: autoescape, not strict).
    """
    import jinja2  # here, not at import: most commands render nothing

    options: dict[str, Any] = {"undefined": jinja2.StrictUndefined if strict else jinja2.Undefined,
                               "autoescape": autoescape}
    if templates:
        options.update(loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env = jinja2.Environment(**options)
    env.filters.update(filters or {})
    return env
