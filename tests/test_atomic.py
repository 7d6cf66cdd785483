import os
import subprocess
import sys

import pytest

from cwm.atomic import atomic_open, atomic_path, remove_stale_tmp, write_json


def test_atomic_open_replaces_only_on_success(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_open(target) as f:
        f.write("new")
    assert target.read_text() == "new"


def test_kill9_mid_write_leaves_old_file(tmp_path):
    target = tmp_path / "ckpt.bin"
    write_json(target, {"v": 1})
    code = (
        "import os, sys\n"
        "from cwm.atomic import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    open(tmp, 'wb').write(b'x' * 1000)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    assert '"v": 1' in target.read_text()
    assert remove_stale_tmp(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]


def test_atomic_path_for_name_based_writers(tmp_path):
    target = tmp_path / "x.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"abc")
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert os.path.getsize(target) == 3
