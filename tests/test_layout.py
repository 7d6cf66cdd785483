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
# stage -> the modules of a forbidden subpackage it may import all the same: the RL environments
# stand alone (test below), and `cwm-ingest sim` renders through them so that its videos are,
# pixel for pixel, what the agent observes.
ALLOWED = {"ingest": ("rl.envs",)}


def _imports(path: Path) -> set[str]:
    """The cwm modules `path` imports, without the `cwm.` (`rl.envs.registry`, `errors`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cwm."):
            found.add(node.module.removeprefix("cwm."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("cwm.") for a in node.names if a.name.startswith("cwm.")}
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_stage_imports_flow_one_way(stage):
    def forbidden(module: str) -> bool:
        return (module.split(".")[0] in FORBIDDEN[stage]
                and not any(_within(module, a) for a in ALLOWED.get(stage, ())))

    bad = {str(p.relative_to(ROOT)): {m for m in _imports(p) if forbidden(m)}
           for p in (ROOT / stage).rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_rl_envs_stand_alone():
    """What ingest may import of `rl` imports nothing else of cwm but `cwm.errors`."""
    for path in (ROOT / "rl" / "envs").rglob("*.py"):
        assert {m for m in _imports(path) if not _within(m, "rl.envs")} <= {"errors"}, path
