"""The repository's shape: module names that cannot shadow what is installed."""

from __future__ import annotations

import pkgutil
import sys

from conftest import REPO

FOLDERS = ("space", "train", "eval", "model_card")


def test_no_module_shares_a_name_with_an_installed_package():
    """Run as a script (`python eval/evaluate.py`), a folder is first on sys.path: a module of it named like an
    installed package (the `evaluate` package, say) would be imported in that package's place."""
    ours = {path.stem for folder in FOLDERS for path in (REPO / folder).glob("*.py")} - {"__init__"}
    installed = {module.name for module in pkgutil.iter_modules()
                 if "site-packages" in str(getattr(module.module_finder, "path", ""))}
    stdlib = set(sys.stdlib_module_names)
    assert not ours & installed, f"rename these modules or drop the package: {sorted(ours & installed)}"
    assert not ours & stdlib, f"these modules shadow the standard library: {sorted(ours & stdlib)}"
