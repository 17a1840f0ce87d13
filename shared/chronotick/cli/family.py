"""``chronotick train`` and ``finetune``: run a family's own module with the family's own Python.

Each family pins its own transformers, so its training code only runs in its environment:
``.venvs/<environment>/bin/python`` of this checkout (or of ``$CHRONOTICK_VENVS``, as scripts/envs.sh
reads it) when it exists, else this interpreter if it can import the family's package.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from chronotick.families import families

# shared/chronotick/cli/family.py -> the checkout's root (the shared package is installed editable).
_CHECKOUT = Path(__file__).resolve().parents[3]


class FamilyUnavailable(RuntimeError):
    """No interpreter here can run the family's code; the message says how to get one."""


def family_python(family: str) -> str:
    if family not in families():
        raise FamilyUnavailable(f"unknown family {family!r}; known: {', '.join(families())}")
    declared = families()[family]
    venvs = Path(os.environ.get("CHRONOTICK_VENVS", _CHECKOUT / ".venvs"))
    python = venvs / declared.environment / "bin" / "python"
    if python.exists():
        return str(python)
    if importlib.util.find_spec(declared.package) is not None:
        return sys.executable
    raise FamilyUnavailable(
        f"no environment for {family}: {python} is missing and this interpreter cannot import "
        f"{declared.package}; run scripts/setup-env {declared.environment}"
    )


def run_family_module(family: str, module: str, arguments: list[str]) -> int:
    """``python -m <package>.<module> ARGUMENTS`` in the family's environment; its exit status."""
    command = [family_python(family), "-m", f"{families()[family].package}.{module}", *arguments]
    print("running: " + " ".join(command), file=sys.stderr)
    return subprocess.run(command, check=False).returncode
