"""Checker SMTP alerts next to Keepalived 2.2.7, in user-mode-linux (real IPVS): the same
configuration and the same events (three real servers failing at start-up, two coming
back) give the same mails -- SMTP commands, subjects and bodies -- for TCP_CHECK,
MISC_CHECK, HTTP_GET and the virtual server's quorum (start, lost, gained)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from uml import smtp_guest
from uml.rig import Guest

pytestmark = [pytest.mark.uml, pytest.mark.slow]

UML_PRELOAD = ("uml.smtp_guest",)
FASTKA = str(Path(sys.executable).parent / "fastka")


def _mails(guest: Guest, prog: str) -> list[tuple[tuple[str, ...], str, str]]:
    w = guest.workdir
    argv = [prog, "-n", "-l", "-D", "-C", "-p", str(w / f"{Path(prog).name}.pid"), "-c", str(w / "c.pid")]
    r = guest.call(smtp_guest.alerts, argv, str(w), timeout=120)
    mails = sorted(tuple(m) for m in r["mails"])  # type: ignore[union-attr]
    assert len(mails) == 8, f"{prog}: {mails}\n{r['output']}"
    return mails  # type: ignore[return-value]


def test_checker_alerts_as_keepalived(uml_guest: Guest) -> None:
    theirs = _mails(uml_guest, "keepalived")
    ours = _mails(uml_guest, FASTKA)
    assert ours == theirs
    vs = "[10.99.0.100]:tcp:80"
    assert ("[lb-uml] Virtualserver " + vs + " - DOWN", "=> Lost quorum 2+0=2 <= 1 <=") in [
        (s, b) for _c, s, b in ours
    ]
