"""The book: papermill execution with a content-hash cache, the claims ledger, the chapters' preamble, tables and
figures. `python -m divdistill.book execute | html | ledger | sync-url`."""
from .build import (BOOK, INSTALL_CELL, NOTEBOOKS, ROOT, build_copy, declared_parameters, execute, html, input_hash,
                    ledger_markdown, repo_url, sync_install_cells, write_ledger)
from .chapter import Chapter, open_chapter

__all__ = ["BOOK", "INSTALL_CELL", "NOTEBOOKS", "ROOT", "build_copy", "declared_parameters", "execute", "html",
           "input_hash", "ledger_markdown", "repo_url", "sync_install_cells", "write_ledger", "Chapter", "open_chapter"]
