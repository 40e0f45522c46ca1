"""`python -m trinet.demo`: see `trinet.demo.command`."""

import sys

from trinet.demo.command import main

sys.exit(main())
