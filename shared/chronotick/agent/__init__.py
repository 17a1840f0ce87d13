"""The clock agent: measures this host's offset from a real source (an NTP server or the local
chronyd), asks the fleet for forecasts, and serves the corrected time with an honest error bound.

Run it with ``chronotick agent`` (settings from ``CHRONOTICK_AGENT_*``, see ``settings.py``).
Needs the ``client`` extra of chronotick-shared (ntplib, psutil, httpx, tenacity).
"""

from chronotick.agent.app import create_app, run_agent
from chronotick.agent.settings import AgentSettings, SettingsInvalid, load_settings

__all__ = ["AgentSettings", "SettingsInvalid", "create_app", "load_settings", "run_agent"]
