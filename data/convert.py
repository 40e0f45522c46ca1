"""Convert an extracted official re-id release into trinet CSVs (train, query, test = gallery).

    python data/convert.py market1501 ~/datasets/Market-1501-v15.09.15 --out data

The command of a clone; installed with pip, the same command is `trinet-convert`. The logic and the full
description are in trinet/cli/convert.py; see data/README.md for the releases.
"""

import os
import sys

# Run as `python data/convert.py` from anywhere: make the repository's trinet package importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trinet.cli.convert import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
