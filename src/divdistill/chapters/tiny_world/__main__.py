"""`python -m divdistill.chapters.tiny_world`: the chapter's committed JSON (see measure.main)."""
from .measure import main

raise SystemExit(main())
