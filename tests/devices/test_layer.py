"""The devices layer sits below measurement: it imports nothing of ours but itself,
``exceptions`` and ``config``, and the vendor library only in its vendor's module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import llenergymeasure.devices

DEVICES = Path(llenergymeasure.devices.__file__).parent
ALLOWED = ("llenergymeasure.devices", "llenergymeasure.exceptions", "llenergymeasure.config")
VENDOR_LIBRARIES = {"pynvml": "nvidia.py"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_devices_imports_no_higher_layer() -> None:
    upward = {
        f"{path.name} imports {module}"
        for path in DEVICES.glob("*.py")
        for module in imported_modules(path)
        if module.startswith("llenergymeasure") and not module.startswith(ALLOWED)
    }
    assert not upward


def test_vendor_library_only_in_its_vendor_module() -> None:
    misplaced = {
        f"{path.name} imports {module}"
        for path in DEVICES.glob("*.py")
        for module in imported_modules(path)
        if module in VENDOR_LIBRARIES and path.name != VENDOR_LIBRARIES[module]
    }
    assert not misplaced
    assert "pynvml" in imported_modules(DEVICES / "nvidia.py")


def test_importing_devices_imports_no_vendor_library() -> None:
    modules = [p.stem for p in DEVICES.glob("*.py") if p.stem != "__init__"]
    names = ", ".join(f"llenergymeasure.devices.{stem}" for stem in modules)
    code = (
        f"import sys, {names}\n"
        "print([m for m in ('pynvml', 'torch', 'psutil') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
