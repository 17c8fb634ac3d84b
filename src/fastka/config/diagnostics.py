"""Configuration diagnostics: what ``fastka -t`` prints and how it decides the exit code.

Keepalived keeps the *highest* ``config_err_t`` reported during a config test
(``vreport_config_error()``) and maps it to the exit code (cli.md §6): missing files,
bad interfaces and fatal errors alone give 4, any other error or warning 5, a script
security violation 6. :class:`Status` is ordered so that ``max()`` gives that precedence.
Messages that Keepalived only logs (``log_message``) do not change the exit code; they
have :attr:`Status.OK`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from fastka.config.model import Location
from fastka.errors import ConfigError


class Status(enum.IntEnum):
    """Severity classes of Keepalived's config test, in precedence order."""

    OK = 0
    FILE_NOT_FOUND = 1
    BAD_IF = 2
    FATAL = 3
    ERROR = 4
    SECURITY = 5


# config-test exit code per status (cli.md §6)
_EXIT = {
    Status.OK: 0,
    Status.FILE_NOT_FOUND: 4,
    Status.BAD_IF: 4,
    Status.FATAL: 4,
    Status.ERROR: 5,
    Status.SECURITY: 6,
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One message about the configuration.

    ``level`` is a :mod:`logging` level (for the daemon's log); ``status`` is what the
    message counts as for ``-t``. ``keyword`` names the keyword concerned, when there is one.
    """

    level: int
    message: str
    location: Location | None = None
    status: Status = Status.ERROR
    keyword: str | None = None

    def format(self, *, show_file: bool = True) -> str:
        """Keepalived's format: ``(FILE: Line N) text`` or ``(Line N) text``."""
        if self.location is None:
            return self.message
        if show_file:
            return f"({self.location.file}: Line {self.location.line}) {self.message}"
        return f"(Line {self.location.line}) {self.message}"

    def __str__(self) -> str:
        return self.format()

    def to_error(self) -> ConfigError:
        loc = self.location
        return ConfigError(self.message, loc.file if loc else None, loc.line if loc else None)


class Diagnostics(list[Diagnostic]):
    """The collector every stage reports to; a list of :class:`Diagnostic`."""

    def add(
        self,
        level: int,
        message: str,
        location: Location | None,
        status: Status,
        keyword: str | None = None,
    ) -> None:
        self.append(Diagnostic(level, message, location, status, keyword))

    def error(self, message: str, location: Location | None = None, keyword: str | None = None) -> None:
        """A configuration error Keepalived reports (exit 5); parsing goes on."""
        self.add(logging.ERROR, message, location, Status.ERROR, keyword)

    def warning(self, message: str, location: Location | None = None, keyword: str | None = None) -> None:
        """A warning Keepalived reports as a config error (it still counts: exit 5)."""
        self.add(logging.WARNING, message, location, Status.ERROR, keyword)

    def info(self, message: str, location: Location | None = None, keyword: str | None = None) -> None:
        """A message that does not make the configuration wrong (exit code unchanged)."""
        self.add(logging.INFO, message, location, Status.OK, keyword)

    def fatal(self, message: str, location: Location | None = None, keyword: str | None = None) -> None:
        self.add(logging.ERROR, message, location, Status.FATAL, keyword)

    def not_found(self, message: str, location: Location | None = None) -> None:
        self.add(logging.ERROR, message, location, Status.FILE_NOT_FOUND)

    def bad_interface(self, message: str, location: Location | None = None) -> None:
        self.add(logging.WARNING, message, location, Status.BAD_IF)

    def security(self, message: str, location: Location | None = None) -> None:
        """Script security (``-t`` exit 6); Keepalived still runs the scripts, so a warning."""
        self.add(logging.WARNING, message, location, Status.SECURITY)

    @property
    def status(self) -> Status:
        return worst(self)


def worst(diagnostics: Iterable[Diagnostic]) -> Status:
    return max((d.status for d in diagnostics), default=Status.OK)


def exit_code(diagnostics: Iterable[Diagnostic]) -> int:
    """The ``--config-test`` exit code for these diagnostics (cli.md §6)."""
    return _EXIT[worst(diagnostics)]


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """True if any diagnostic counts as a configuration problem."""
    return worst(diagnostics) is not Status.OK
