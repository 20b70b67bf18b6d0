"""scripts/import_graph.py: the import graph among the sdaanet modules, read without importing."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


def test_the_builders_records_and_evaluation_sit_below_the_entry_points():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    edges = dict(line.split(" -> ") for line in done.stdout.splitlines())
    assert "sdaanet.build" in edges and "sdaanet.records" in edges
    for entry in ("sdaanet.train", "sdaanet.eval"):
        assert not {"sdaanet.train", "sdaanet.eval"} & set(edges[entry].split(", "))
    for low in ("sdaanet.build", "sdaanet.records", "sdaanet.evaluation"):
        assert not {"sdaanet.train", "sdaanet.eval", "sdaanet.report"} & set(edges[low].split(", "))
    # what the script still reports (if anything) involves none of them
    named = set(done.stderr.split())
    assert not named & {f"sdaanet.{m}" for m in ("train", "eval", "evaluation", "records", "build")}
    assert done.returncode == (1 if done.stderr else 0)
