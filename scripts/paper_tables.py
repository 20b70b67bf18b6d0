"""Regenerate the "Every cell" section of docs/reproducing.md from the experiments' `paper:` nodes
(`sdaanet.paper.reproducing_markdown`); `make paper-doc` runs it with `--write`, and
tests/test_paper.py checks that the committed section matches.

    python scripts/paper_tables.py           # print the section
    python scripts/paper_tables.py --write   # rewrite it in docs/reproducing.md (or --doc FILE)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from sdaanet.cli import entry_point
from sdaanet.errors import ConfigError
from sdaanet.paper import reproducing_markdown

BEGIN = "<!-- BEGIN GENERATED: sdaanet.paper.reproducing_markdown -->"
END = "<!-- END GENERATED -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "reproducing.md"
_SECTION = re.compile(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), re.DOTALL)


def _one_section(text: str) -> re.Match[str]:
    found = list(_SECTION.finditer(text))
    if len(found) != 1:
        raise ConfigError(f"expected one '{BEGIN}' ... '{END}' section, found {len(found)}")
    return found[0]


def generated_section(text: str) -> str:
    """The part of `text` between the markers (what `reproducing_markdown()` wrote)."""
    return _one_section(text).group(1)


def replace_section(text: str, section: str) -> str:
    """`text` with the part between the markers replaced by `section`."""
    match = _one_section(text)
    return text[: match.start(1)] + section + text[match.end(1) :]


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Print the generated section, or (`--write`) rewrite it in the doc in place."""
    parser = argparse.ArgumentParser(
        prog="python scripts/paper_tables.py",
        description="Print the generated 'Every cell' section of docs/reproducing.md.",
    )
    parser.add_argument("--write", action="store_true", help="rewrite that section of --doc")
    parser.add_argument("--doc", type=Path, default=DOC, help=f"the doc (default {DOC})")
    args = parser.parse_args(argv)
    section = reproducing_markdown()
    if not args.write:
        sys.stdout.write(section)
        return 0
    if not args.doc.is_file():
        raise ConfigError(f"{args.doc} not found: --write rewrites a section of an existing doc")
    text = args.doc.read_text(encoding="utf-8")
    updated = replace_section(text, section)
    if updated != text:
        args.doc.write_text(updated, encoding="utf-8")
    print(f"{args.doc}: {'rewritten' if updated != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
