#!/usr/bin/env python3
"""Train an embedding with the triplet loss; see `python train.py --help`."""
import sys

from trinet.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
