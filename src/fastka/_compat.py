"""Which implementation of each compiled module to use.

``FASTKA_NO_EXTENSIONS=1`` selects the pure-Python references everywhere (as
multidict's ``MULTIDICT_NO_EXTENSIONS``); otherwise the compiled modules are used
and failing to import one is an error, not a silent fallback, so that a broken
build never passes for a working one.
"""

import os
import platform

NO_EXTENSIONS: bool = os.environ.get("FASTKA_NO_EXTENSIONS", "") not in ("", "0")
USE_EXTENSIONS: bool = not NO_EXTENSIONS and platform.python_implementation() == "CPython"
