"""`python -m divdistill.chapters.hybrid`: the chapter's committed JSON (see measure.main)."""
from .measure import main

raise SystemExit(main())
