"""Combine several training CSVs into one, identities kept apart, for combined-trainval training.

    python data/combine.py --out data/combined_train.csv \\
        --source market1501 data/market1501_train.csv ~/datasets/Market-1501-v15.09.15 \\
        --source duke data/dukeMTMC_train.csv ~/datasets/DukeMTMC-reID

The command of a clone; installed with pip, the same command is `trinet-combine`. The logic and the full
description are in trinet/cli/combine.py; see data/README.md for the releases.
"""

import os
import sys

# Run as `python data/combine.py` from anywhere: make the repository's trinet package importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trinet.cli.combine import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
