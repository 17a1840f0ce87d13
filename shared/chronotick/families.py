"""The fleet's model families, as ``families.toml`` beside this module declares them.

Standard library only: the scripts run this module with the host's Python, before any environment
exists (``PYTHONPATH=shared python3.11 -m chronotick.families`` prints one family a line).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DECLARATION = Path(__file__).with_name("families.toml")


@dataclass(frozen=True)
class Family:
    name: str
    environment: str
    package: str
    models: tuple[str, ...]
    port: int
    image: str


@cache
def families() -> dict[str, Family]:
    """Every declared family by name, in the declaration's order."""
    declared = tomllib.loads(DECLARATION.read_text())
    return {
        name: Family(
            name=name,
            environment=entry["environment"],
            package=entry["package"],
            models=tuple(entry["models"]),
            port=entry["port"],
            image=entry["image"],
        )
        for name, entry in declared.items()
    }


def family(name: str) -> Family:
    return families()[name]


def main() -> None:
    # The scripts' view: `name environment port package`, one family a line (bash reads it with `read`).
    for declared in families().values():
        print(declared.name, declared.environment, declared.port, declared.package)


if __name__ == "__main__":
    main()
