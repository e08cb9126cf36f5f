"""mkdocs-gen-files entry: writes the reference pages (``docs/reference_pages.py``) into the
site at build time; nothing generated is committed."""

import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project root

from docs.reference_pages import PAGES

for path, build in PAGES.items():
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(build())
