"""GIF writing: one shared palette, every frame kept, timing and colours as given."""

import numpy as np
from PIL import Image, ImageSequence

from cwm.model.pictures import save_gif


def read_gif(path):
    with Image.open(path) as im:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
        durations = [f.info.get("duration") for f in ImageSequence.Iterator(im)]
        loop = im.info.get("loop")
    return np.stack(frames), durations, loop


def moving_squares(t=40, size=32):
    """Frames with 5 colours, each frame different (GIF writers merge repeated frames)."""
    colours = np.array([[10, 20, 30], [200, 30, 40], [30, 180, 60], [40, 50, 220], [250, 250, 0]],
                       np.uint8)
    frames = np.empty((t, size, size, 3), np.uint8)
    frames[:] = colours[0]
    for i in range(t):
        for k in range(1, 5):
            x = (i * k) % (size - 6)
            frames[i, 4 * k:4 * k + 5, x:x + 6] = colours[k]
    return frames


def test_few_colours_round_trip_exactly(tmp_path):
    frames = moving_squares()
    path = save_gif(tmp_path / "a.gif", frames, fps=25)
    back, durations, loop = read_gif(path)
    assert back.shape == frames.shape
    np.testing.assert_array_equal(back, frames)
    assert set(durations) == {40} and loop == 0
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]      # no temporary file left


def test_many_colours_stay_close(tmp_path):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:48]
    frames = np.stack([np.stack([(x * 5 + i) % 256, (y * 5) % 256, (x + y + 3 * i) % 256], -1)
                       for i in range(30)]).astype(np.uint8)
    frames = np.clip(frames + rng.integers(-3, 4, frames.shape), 0, 255).astype(np.uint8)
    back, _, _ = read_gif(save_gif(tmp_path / "b.gif", frames, fps=10))
    assert back.shape == frames.shape
    # A colourful sequence is where one palette for all frames costs most: 7.5 grey levels on
    # average here, where a palette per frame gets 3.3 (a wrong picture is ~100 off).
    err = np.abs(back.astype(int) - frames)
    assert err.mean() < 10 and np.percentile(err, 99) < 32


def test_one_frame(tmp_path):
    frames = moving_squares(t=1)
    back, _, _ = read_gif(save_gif(tmp_path / "c.gif", frames))
    np.testing.assert_array_equal(back, frames)
