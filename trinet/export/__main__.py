"""`python -m trinet.export`: see `trinet.export.command`."""

import sys

from trinet.export.command import main

sys.exit(main())
