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
  (``VrrpInstance.key()``, ``VirtualServer.key()``, ``RealServer.key()`` ...);
  :func:`fastka.config.model.match_by_key` pairs them (removed/added/changed/unchanged).
* :mod:`fastka.config.jsonio` dumps a Config to JSON and reads it back
  (``docs/config-json.md``); :mod:`fastka.config.check` has ``fastka -t``
  (``run_config_test``), the ``-d`` dump (``dump_config``) and ``load_from_options``.
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
