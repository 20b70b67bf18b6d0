"""docs/extending.md cannot rot: every file it names, every `sdaanet.x.y` it cites and every
class, constant or function it names (`BUILDERS`, `_map_key`, `rule_folds(...)`) exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[1]
DOC = ROOT_DIR / "docs" / "extending.md"
PACKAGE = ROOT_DIR / "src" / "sdaanet"
FILE = re.compile(r"^[\w./-]+\.(?:py|yaml|md)$")
DOTTED = re.compile(r"\bsdaanet(?:\.\w+)+")
# a bare Python name: CamelCase, UPPER_CASE or _private (not Hydra's `_target_`), or `f(...)`
DEFINED = re.compile(r"^(?:([A-Z]\w*|_\w*[^\W_])(?:\(.*\))?|([a-z]\w*)\(.*\))$")


def references(text: str) -> tuple[set[str], set[str], set[str]]:
    """(file paths, dotted names, bare names) in `text`'s backticks and its `git status`
    listings; spans with a `<placeholder>` are skipped."""
    spans = [s for s in re.findall(r"`([^`\n]+)`", text) if "<" not in s]
    spans += re.findall(r"^ M (\S+)$", text, flags=re.MULTILINE)
    files = {s for s in spans if FILE.match(s)}
    names = {n for s in spans if s not in files for n in DOTTED.findall(s)}
    bare = {m.group(1) or m.group(2) for s in spans if (m := DEFINED.match(s))}
    return files, names, bare


def undefined(name: str, source: str) -> bool:
    """`name` is neither a def, a class nor an assignment in `source`."""
    pattern = rf"\b(?:def|class) {name}\b|^\s*{name}\s*[:=]"
    return re.search(pattern, source, flags=re.MULTILINE) is None


def missing_file(path: str) -> bool:
    """A path from the repository root (`src/`, `tests/`) must be there; a shorter one (`lit.py`,
    `sources/listfile.py`) must end some file of the package or of docs/."""
    if path.startswith(("src/", "tests/")):
        return not (ROOT_DIR / path).is_file()
    tail = Path(path).parts
    candidates = [*PACKAGE.rglob(Path(path).name), *(ROOT_DIR / "docs").glob(Path(path).name)]
    return not any(p.parts[-len(tail) :] == tail for p in candidates)


def missing_name(dotted: str) -> bool:
    """`sdaanet.a.b.C`: the longest importable module prefix, then attributes down to the end."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return True
            obj = getattr(obj, attr)
        return False
    return True


def test_every_file_and_name_the_doc_cites_exists():
    files, names, bare = references(DOC.read_text(encoding="utf-8"))
    assert len(files) >= 20 and len(names) >= 8 and len(bare) >= 20  # the doc's own were found
    assert sorted(f for f in files if missing_file(f)) == []
    assert sorted(n for n in names if missing_name(n)) == []
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    assert sorted(n for n in bare if undefined(n, source)) == []


def test_a_reference_that_is_gone_is_reported():
    text = "`src/sdaanet/data/modules.py`, `sdaanet.models.NoSuchThing`, `sources/nope.py`\n"
    text += " M src/sdaanet/models/backbones.py\n`src/sdaanet/conf/model/<name>.yaml`"
    files, names, bare = references(text)
    assert files == {"src/sdaanet/data/modules.py", "sources/nope.py",
                     "src/sdaanet/models/backbones.py"}  # fmt: skip
    assert [f for f in sorted(files) if missing_file(f)] == [
        "sources/nope.py",
        "src/sdaanet/data/modules.py",
    ]
    assert names == {"sdaanet.models.NoSuchThing"} and missing_name("sdaanet.models.NoSuchThing")
    _, _, bare = references("`BUILDERS`, `_map_key`, `rule_folds(ids)`, `_target_`, `name`")
    assert bare == {"BUILDERS", "_map_key", "rule_folds"}
    source = "BUILDERS: dict = {}\ndef rule_folds(ids): ...\n"
    assert [n for n in sorted(bare) if undefined(n, source)] == ["_map_key"]
