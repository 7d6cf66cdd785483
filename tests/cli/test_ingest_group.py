"""`cwm-ingest inspect` / `verify` run the shards stage's checks from the ingest command."""

import subprocess
import sys

from tests.shards.conftest import write_shards


def _cwm_ingest(*args):
    code = "from cwm.cli.ingest import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_inspect_and_verify_from_cwm_ingest(tmp_path):
    write_shards(tmp_path, prefix="d", shards=1, per_shard=3, index=False)
    inspected = _cwm_ingest("inspect", str(tmp_path / "d-000000.tar"), "--sheet", str(tmp_path / "s.png"))
    assert inspected.returncode == 0, inspected.stderr
    assert "3 samples" in inspected.stdout and (tmp_path / "s.png").stat().st_size > 0
    verified = _cwm_ingest("verify", str(tmp_path / "d-{000000..000000}.tar"))
    assert verified.returncode == 0 and "ok" in verified.stdout + verified.stderr


def test_inspect_of_missing_spec_is_one_line(tmp_path):
    proc = _cwm_ingest("inspect", str(tmp_path / "nothing-<0000..0003>.tar"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")
