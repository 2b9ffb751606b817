"""A stand-alone copy of the live page for tests and previews: book/live.md's HTML block in a bare HTML file, beside
the same _static/live/ files the book gets, served over http from a local folder."""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading

from .site import ROOT, build_site

PAGE = os.path.join(ROOT, "book", "live.md")


def page_html(md: str = PAGE) -> str:
    """The raw HTML of book/live.md (the live div, its stylesheet and its script) wrapped in a minimal document."""
    with open(md) as f:
        text = f.read()
    block = re.search(r'<div id="dd-live".*?</script>', text, re.S)
    if block is None:
        raise ValueError(f'{md} has no <div id="dd-live"> … <script> block for the live page')
    return f'<!doctype html><html><head><meta charset="utf-8"><title>live</title></head><body>{block.group(0)}</body></html>'


def build_standalone(dest: str) -> dict:
    """dest/live.html plus dest/_static/live/*: the page without the book around it. Returns build_site's report."""
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "live.html"), "w") as f:
        f.write(page_html())
    return build_site(html_dir=dest)


@contextlib.contextmanager
def serve(directory: str):
    """Serve `directory` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_Quiet, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm"}

    def log_message(self, *args):
        pass
