import io
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cwm.cli.shards import cli, main
from cwm.shards.format import make_sample
from tests.shards.conftest import segment, write_shards


def test_inspect_prints_counts_mix_and_writes_contact_sheet(shard_dir, tmp_path):
    write_shards(tmp_path / "h", prefix="h", shards=1, per_shard=4, dataset="h36m")
    sheet = tmp_path / "sheet.png"
    spec = f"ssv2={shard_dir}:1.0,h36m={tmp_path / 'h'}:0.5"
    result = CliRunner().invoke(cli, ["inspect", spec, "--sheet", str(sheet), "--rows", "4",
                                      "--columns", "5"])
    assert result.exit_code == 0, result.output
    assert "ssv2: 4 shards, 24 samples (mp4 3, npy 21)" in result.output
    assert "h36m: 1 shards, 4 samples" in result.output
    assert "mixture weight 0.67" in result.output and "mixture weight 0.33" in result.output
    assert "total: 28 samples" in result.output
    image = np.asarray(Image.open(sheet))
    assert image.shape == (4 * 66 + 2, 5 * 66 + 2, 3)


def test_verify_passes_good_shards(shard_dir):
    result = CliRunner().invoke(cli, ["verify", str(shard_dir)])
    assert result.exit_code == 0, result.output
    assert "verify: 24 samples" in result.output and "ok" in result.output


def test_verify_fails_on_a_bad_sample(tmp_path):
    path = tmp_path / "bad-000000.tar"
    good = make_sample("good_0000", segment(0, 25), {"dataset": "x"})
    small = make_sample("small_0000", np.zeros((25, 32, 32, 3), np.uint8), {"dataset": "x"})
    with tarfile.open(path, "w") as tar:
        for sample in (good, small):
            for field, data in sample.items():
                if field == "__key__":
                    continue
                info = tarfile.TarInfo(f"{sample['__key__']}.{field}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("nometa_0000.frames.npy")
        data = good["frames.npy"][:200]  # truncated array payload
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result = CliRunner().invoke(cli, ["verify", str(path)])
    assert result.exit_code == 1
    assert "small_0000" in result.output and "32, 32" in result.output
    assert "nometa_0000" in result.output and "no meta.json" in result.output
    assert "FAILED" in result.output


def test_bad_spec_is_one_line_error_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["verify", str(tmp_path / "none-{0..3}.tar")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none-{0..3}.tar" in err
