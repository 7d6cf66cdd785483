"""The ingest path never imports torch (3 s per process), and `--help` not even dask or PyAV."""

from __future__ import annotations

import subprocess
import sys

_CHECK = """
import sys
{imports}
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("heavy=" + ",".join(heavy))
"""


def loaded(imports: str, heavy: tuple[str, ...]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _CHECK.format(imports=imports, heavy=heavy)],
                         check=True, capture_output=True, text=True).stdout
    last = out.strip().splitlines()[-1]
    assert last.startswith("heavy="), out
    return [m for m in last.removeprefix("heavy=").split(",") if m]


def test_driver_and_worker_modules_do_not_import_torch():
    imports = ("import cwm.cli.ingest, cwm.ingest.run, cwm.ingest.writer, cwm.ingest.assemble, "
               "cwm.ingest.probe, cwm.ingest.layout, cwm.ingest.simulate\n"
               "cwm.cli.ingest.cli.main(['--help'], standalone_mode=False)")
    assert loaded(imports, ("torch", "webdataset")) == []


def test_help_imports_neither_dask_nor_the_decoder_stack():
    imports = ("import cwm.cli.ingest\n"
               "cwm.cli.ingest.cli.main(['folder', '--help'], standalone_mode=False)")
    assert loaded(imports, ("torch", "dask", "distributed", "h5py")) == []


def test_rendering_a_sim_episode_does_not_import_torch():
    imports = ("import os\n"
               "os.environ.setdefault('MUJOCO_GL', 'egl')\n"
               "from cwm.ingest.sources.sim import Episode\n"
               "from cwm.ingest.simulate import render_episode\n"
               "episode = Episode('metaworld', 'reach', 0, 1, 'scripted', 0.1, 2, 'fast')\n"
               "assert render_episode(episode, 16, 60.0).frames.shape == (3, 16, 16, 3)")
    assert loaded(imports, ("torch", "webdataset")) == []


def test_an_ingest_without_progress_bars_imports_neither_tqdm_nor_pil():
    """tqdm draws the bars and PIL the contact sheets and synthetic textures: ~40 ms of start-up
    that `cwm-ingest folder --no-progress` does not need."""
    imports = ("import cwm.cli.ingest, cwm.ingest.run, cwm.ingest.writer, cwm.ingest.assemble\n"
               "from cwm.ingest.progress import Progress\n"
               "p = Progress(3, 5, enabled=False); p.video('failed'); p.shard(); p.close()\n"
               "assert p.failed == 1")
    assert loaded(imports, ("tqdm", "PIL")) == []
