"""atheris harness for the configuration compiler (not collected by pytest).

Any input -- random bytes, or mutations of the Keepalived samples given as the seed
corpus -- must compile to a model plus diagnostics: no exception escapes ``loads()``, no
hang (line budget and expansion limits), no "internal" diagnostic. The JSON dump of
whatever compiled must read back to an equal model.

Run (10 minutes, seeded with the samples)::

    mkdir -p /tmp/fk-fuzz-config && cp /work/shared/keepalived-samples/keepalived.conf.* \\
        /tmp/fk-fuzz-config/
    .venv/bin/python tests/fuzz/fuzz_config.py /tmp/fk-fuzz-config -max_total_time=600 \\
        -max_len=8192 -timeout=20 -rss_limit_mb=2048
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from fastka.config import Host, jsonio, loads
    from fastka.config.compile import INTERNAL_ERROR
from fastka.config.diagnostics import Status

HOST = Host(hostname="fuzz.example", interfaces=lambda name: name.startswith("eth"), check_scripts=False)

# A small private tree for ``include`` to find (and loop through); nothing outside it.
ROOT = tempfile.mkdtemp(prefix="fk-fuzz-config-")
for name, body in {
    "a.conf": "vrrp_instance VI_A {\n interface eth0\n virtual_router_id 9\n include b.conf\n",
    "b.conf": "virtual_ipaddress {\n 10.9.9.9\n}\n}\ninclude a.conf\n",
    "c/d.conf": "$X=1\n~SEQ(I,1,3) global_defs { router_id r$I }\n",
}.items():
    os.makedirs(os.path.dirname(os.path.join(ROOT, name)), exist_ok=True)
    with open(os.path.join(ROOT, name), "w") as f:
        f.write(body)


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    config, diagnostics = loads(
        text,
        directory=ROOT,
        host=HOST,
        config_id="fuzz",
        random_seed=0,
        max_lines=20_000,
        include_root=ROOT,
    )
    for d in diagnostics:
        assert isinstance(d.message, str) and d.message
        assert not d.message.startswith(INTERNAL_ERROR), d.message
        assert isinstance(d.status, Status)
        str(d)
    back = jsonio.loads(jsonio.dumps(config))
    assert back == config, "JSON round trip changed the model"


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
