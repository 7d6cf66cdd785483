"""`cwm-ingest inspect` / `verify` run the shards stage's checks from the ingest command."""

import subprocess
import sys

import numpy as np
import webdataset as wds

from cwm.shards.format import make_sample


def _cwm_ingest(*args):
    code = "from cwm.cli.ingest import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_inspect_and_verify_from_cwm_ingest(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (30, 64, 64, 3), dtype=np.uint8)
    with wds.TarWriter(str(tmp_path / "d-000000.tar")) as sink:
        for i in range(3):
            sink.write(make_sample(f"v{i}_0000", frames, {"dataset": "d"}))
    inspected = _cwm_ingest("inspect", str(tmp_path / "d-000000.tar"), "--sheet", str(tmp_path / "s.png"))
    assert inspected.returncode == 0, inspected.stderr
    assert "3 samples" in inspected.stdout and (tmp_path / "s.png").stat().st_size > 0
    verified = _cwm_ingest("verify", str(tmp_path / "d-{000000..000000}.tar"))
    assert verified.returncode == 0 and "ok" in verified.stdout + verified.stderr


def test_inspect_of_missing_spec_is_one_line(tmp_path):
    proc = _cwm_ingest("inspect", str(tmp_path / "nothing-<0000..0003>.tar"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")
