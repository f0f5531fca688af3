"""``python -m advx`` (also what ``torchrun -m advx`` runs)."""

import sys

from advx.cli import main

sys.exit(main())
