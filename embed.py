#!/usr/bin/env python3
"""Embed a dataset with a trained experiment; see `python embed.py --help`."""
import sys

from trinet.cli.embed import main

if __name__ == "__main__":
    sys.exit(main())
