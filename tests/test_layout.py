"""Data flows one way: cli -> stage; rl may import model; nothing imports cli."""

import ast
from pathlib import Path

import pytest

import cwm

ROOT = Path(cwm.__file__).parent
# stage -> subpackages it must never import
FORBIDDEN = {
    "ingest": {"cli", "model", "rl"},
    "shards": {"cli", "ingest", "model", "rl"},
    "model": {"cli", "ingest", "rl"},
    "rl": {"cli", "ingest"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cwm."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cwm.")}
    return found


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_stage_imports_flow_one_way(stage):
    bad = {str(p.relative_to(ROOT)): _imports(p) & FORBIDDEN[stage]
           for p in (ROOT / stage).rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}
