import io

import numpy as np
import pytest

from cwm.shards.format import (decode_frames, encode_npy, make_sample, npy_buffers, sanitize_id,
                               sample_key)


def test_sanitize_human36m_name():
    assert sanitize_id("S1/Videos/Directions 1.54138969") == "S1_Videos_Directions_1_54138969"
    assert sample_key(sanitize_id("a.b c"), 3) == "a_b_c_0003"


@pytest.mark.parametrize("storage", ["npy", "mp4"])
def test_roundtrip(storage):
    rng = np.random.default_rng(0)
    # smooth content so H.264 at crf 18 is near-lossless
    base = rng.integers(0, 255, (1, 8, 8, 3)).astype(np.float32)
    frames = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)
    frames = np.repeat(frames, 6, axis=0).astype(np.uint8)
    s = make_sample("k_0000", frames, {"dataset": "x"}, storage=storage)
    out = decode_frames(s)
    assert out.shape == frames.shape and out.dtype == np.uint8
    err = np.abs(out.astype(int) - frames.astype(int)).mean()
    assert err < (0.5 if storage == "npy" else 12)


@pytest.mark.parametrize("shape", [(50, 64, 64, 3), (74, 64, 64, 3), (1, 32, 32, 3),
                                   (0, 64, 64, 3)])
def test_npy_buffers_are_the_bytes_of_np_save(shape):
    """The ingest writer writes `npy_buffers` one after the other, and `encode_npy` joins them:
    exactly `np.save`'s bytes."""
    frames = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    saved = io.BytesIO()
    np.save(saved, frames, allow_pickle=False)
    header, body = npy_buffers(frames)
    assert header + body.tobytes() == saved.getvalue() == encode_npy(frames)
    # a view of a larger array (as the decoder's frames are) gives the same bytes
    big = np.zeros((shape[0] + 3, *shape[1:]), np.uint8)
    big[1:1 + shape[0]] = frames
    assert b"".join(npy_buffers(big[1:1 + shape[0]])) == saved.getvalue()


def test_pickled_npy_rejected():
    import io
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        decode_frames({"__key__": "x", "frames.npy": buf.getvalue()})
