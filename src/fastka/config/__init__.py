"""keepalived.conf -> a typed, validated model.

Public API::

    from fastka.config import load, loads, Host, exit_code, has_errors
    config, diagnostics = load("/etc/keepalived/keepalived.conf", config_id="lb1")

* :func:`load` / :func:`loads` compile a file / text into a :class:`Config`
  (``fastka.config.model``) with every Keepalived default applied, plus the list of
  :class:`Diagnostic` s (Keepalived's messages, with file:line). They never raise for
  anything in the configuration.
* :func:`exit_code` is the ``--config-test`` exit code for the diagnostics,
  :func:`has_errors` whether the configuration has problems (the daemon's reload check).
* Reload: compile the new file and match old and new objects by their ``key()``
  (``VrrpInstance.key()``, ``VirtualServer.key()``, ``RealServer.key()`` ...).
* :mod:`fastka.config.json` dumps a Config to JSON and reads it back.
"""

from fastka.config.compile import Host, interface_exists, load, loads
from fastka.config.diagnostics import Diagnostic, Diagnostics, Status, exit_code, has_errors
from fastka.config.model import Config

__all__ = [
    "Config",
    "Diagnostic",
    "Diagnostics",
    "Host",
    "Status",
    "exit_code",
    "has_errors",
    "interface_exists",
    "load",
    "loads",
]
