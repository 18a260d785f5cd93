"""``python -m napari_emseg``: the command line, also where no console script is installed."""

import sys

from napari_emseg.cli import main

sys.exit(main())
