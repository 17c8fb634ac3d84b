import sys

from fastka.cli import main

sys.exit(main())
