"""``python -m skcorr``: the same as the ``skcorr`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
