"""scripts/import_graph.py: the import graph among the sdaanet modules, read without importing."""

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"
spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
import_graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_graph)


def test_the_package_has_no_circle_no_upward_import_and_entry_points_apart():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    edges = dict(line.split(" -> ") for line in done.stdout.splitlines())
    for low in ("sdaanet.build", "sdaanet.records", "sdaanet.evaluation", "sdaanet.plan"):
        assert not import_graph.ENTRY_POINTS & set(edges[low].split(", "))
    assert "sdaanet.report" not in edges["sdaanet.table"].split(", ")


def test_each_rule_names_what_breaks_it():
    edges = {
        "sdaanet.a": {"sdaanet.b"},
        "sdaanet.b": {"sdaanet.a"},
        "sdaanet.table": {"sdaanet.report"},
        "sdaanet.report": set(),
        "sdaanet.records": {"sdaanet.train"},
        "sdaanet.train": set(),
        "sdaanet.demo": {"sdaanet.train"},
        "sdaanet.models.layers": {"sdaanet.lit", "sdaanet.errors", "sdaanet.models.x"},
        "sdaanet.data.episodes": {"sdaanet.models.layers"},
        "sdaanet.lit": set(),
        "sdaanet.errors": set(),
        "sdaanet.models.x": set(),
    }
    assert import_graph.problems(edges) == [
        "circle: sdaanet.a <-> sdaanet.b",
        "entry point sdaanet.table imports entry point sdaanet.report",
        "upward import: sdaanet.records imports entry point sdaanet.train",
        "floor sdaanet.data.episodes imports sdaanet.models.layers",
        "floor sdaanet.models.layers imports sdaanet.lit",
    ]
