"""``python -m f2p`` entry point."""

import sys

from f2p.cli import main

if __name__ == "__main__":
    sys.exit(main())
