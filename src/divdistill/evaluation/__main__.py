"""`python -m divdistill.evaluation` = `divdistill-evaluate`."""
import sys

from .cli import main

sys.exit(main())
