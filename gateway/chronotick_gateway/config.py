"""The configuration in force and its hot reload.

A ``FleetConfig`` is immutable: the settings and the version of the file they came from. A request
reads the one in force once, at its start, and runs under it to its end; a reload builds and
validates a whole new one and swaps it in, so no request ever sees half of each.

The watcher checks the file's content every ``config_poll_s`` and reloads when it changed and
read the same twice in a row (a file caught half-written by an editor is not applied), or at once
on SIGHUP. An invalid file is refused with each key and the reason, logged, and the configuration
in force stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError

from chronotick_gateway.settings import CONFIG_FILE_VARIABLE, ENV_PREFIX, GatewaySettings

logger = logging.getLogger("chronotick.gateway.config")

# The version shown when the settings come from the environment alone.
NO_FILE_VERSION = "env"


@dataclass(frozen=True)
class FleetConfig:
    settings: GatewaySettings
    version: str


class ConfigError(Exception):
    """A configuration that cannot be used; the message names each key and the reason."""


def config_file() -> Path | None:
    """The configuration file named by the environment, if any."""
    path = os.environ.get(CONFIG_FILE_VARIABLE)
    return Path(path) if path else None


def content_version(content: bytes) -> str:
    """The version of a configuration file: a short hash of its bytes (``sha256sum`` agrees)."""
    return hashlib.sha256(content).hexdigest()[:12]


def load_config() -> FleetConfig:
    """Defaults, then the file (if the environment names one), then the environment; validated."""
    path = config_file()
    if path is None:
        return FleetConfig(_build("the environment"), NO_FILE_VERSION)
    content = _read(path)
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not a {type(data).__name__}")
    # pydantic-settings' YAML source reads the file again: the version must be that of what it read.
    settings = _build(f"{path} (or a {ENV_PREFIX}* variable)")
    if _read(path) != content:
        raise ConfigError(f"{path}: changed while it was being read")
    return FleetConfig(settings, content_version(content))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror or error}") from error


def _build(source: str) -> GatewaySettings:
    try:
        return GatewaySettings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '(top level)'}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"invalid configuration from {source}: {problems}") from error
    except SettingsError as error:  # a variable that is not even JSON, say
        raise ConfigError(f"invalid configuration from {source}: {error}") from error


class ConfigWatcher:
    """Reloads the configuration file when its content changes or on ``request_reload`` (SIGHUP),
    and hands each valid new configuration to ``apply``."""

    def __init__(self, path: Path, current: FleetConfig, apply: Callable[[FleetConfig], Awaitable[None]]) -> None:
        self._path = path
        self._apply = apply
        self._version = current.version
        self._poll_s = current.settings.config_poll_s
        self._last_read: str | None = current.version
        self._refused: str | None = None
        self._reload_now = asyncio.Event()

    def request_reload(self) -> None:
        self._reload_now.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._reload_now.wait(), timeout=self._poll_s)
            except TimeoutError:
                await self._check()
            else:
                self._reload_now.clear()
                self._last_read = await asyncio.to_thread(self._digest)
                await self._reload(self._last_read)

    async def _check(self) -> None:
        read = await asyncio.to_thread(self._digest)
        settled = read == self._last_read
        self._last_read = read
        if settled and read not in (self._version, self._refused):
            await self._reload(read)

    def _digest(self) -> str | None:
        try:
            return content_version(self._path.read_bytes())
        except OSError:
            return None  # load_config says why, once

    async def _reload(self, read: str | None) -> None:
        """``read``: the version of the file as last read, remembered if it is refused so that
        it is logged once, not at every check."""
        try:
            config = await asyncio.to_thread(load_config)
        except ConfigError as error:
            self._refused = read
            logger.error("configuration refused, version %s stays in force: %s", self._version, error)
            return
        self._refused = None
        self._version = self._last_read = config.version
        self._poll_s = config.settings.config_poll_s
        await self._apply(config)
