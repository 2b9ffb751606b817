"""`python -m divdistill.book execute | html | ledger | sync-url`."""
import sys

from .build import main

sys.exit(main())
