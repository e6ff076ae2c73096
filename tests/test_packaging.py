"""Every Python package of the repository (but tests) is shipped by pyproject.toml.

pyproject.toml lists its packages by name, so a new subpackage (such as sfu/sdp/) that is not
added there works in a checkout and in an editable install, but is missing from a wheel.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests"}


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for top in ROOT.iterdir():
        if top.is_dir() and not top.name.startswith(".") and top.name not in NOT_SHIPPED:
            for init in top.rglob("__init__.py"):
                found.add(".".join(init.parent.relative_to(ROOT).parts))
    assert found - listed == set(), "add to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "pyproject.toml lists packages that do not exist"
