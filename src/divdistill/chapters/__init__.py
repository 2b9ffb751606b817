"""One subpackage per chapter: what its notebook measures (measure), how it reads the results (report), and the
CLI that writes its committed JSON under data/ (`python -m divdistill.chapters.<chapter>`)."""
