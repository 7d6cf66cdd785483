import json

import pytest

from cwm.errors import UserError
from cwm.shards.spec import Mixture, expand_braces, resolve_spec, resolve_sources
from tests.shards.conftest import write_shards


def names(paths):
    return [p.rsplit("/", 1)[-1] for p in paths]


def test_brace_and_angle_forms_mean_the_same(shard_dir):
    brace = resolve_spec(f"{shard_dir}/d-{{000000..000003}}.tar")
    angle = resolve_spec(f"{shard_dir}/d-<000000..000003>.tar")
    assert brace == angle
    assert names(brace) == [f"d-{i:06d}.tar" for i in range(4)]


def test_brace_expansion_padding_alternatives_and_nesting():
    assert expand_braces("s-{0..2}.tar") == ["s-0.tar", "s-1.tar", "s-2.tar"]
    assert expand_braces("s-<0008..0010>") == ["s-0008", "s-0009", "s-0010"]
    assert expand_braces("{a,b{1..2}}.tar") == ["a.tar", "b1.tar", "b2.tar"]
    assert expand_braces("plain<name>.tar") == ["plain<name>.tar"]


def test_glob_directory_and_list_file(shard_dir, tmp_path):
    assert names(resolve_spec(f"{shard_dir}/*.tar")) == [f"d-{i:06d}.tar" for i in range(4)]
    from_dir = resolve_sources(str(shard_dir))[0]
    assert len(from_dir.shards) == 4 and set(from_dir.counts.values()) == {6}
    listing = tmp_path / "train.txt"
    listing.write_text(f"# two shards\n{shard_dir}/d-000000.tar\n\n{shard_dir}/d-00000{{2,3}}.tar\n")
    assert names(resolve_spec(str(listing))) == ["d-000000.tar", "d-000002.tar", "d-000003.tar"]


def test_list_file_paths_are_relative_to_it(tmp_path):
    write_shards(tmp_path / "data", shards=2, per_shard=1)
    (tmp_path / "list.shards").write_text("data/d-000001.tar\n")
    assert resolve_spec(str(tmp_path / "list.shards")) == [str(tmp_path / "data" / "d-000001.tar")]


def test_index_schemas_and_directory_without_index(tmp_path):
    paths = write_shards(tmp_path / "a", shards=2, per_shard=1, index=False)
    assert resolve_spec(str(tmp_path / "a")) == paths
    for shards in (["d-000000.tar", "d-000001.tar"], {"d-000000.tar": 1, "d-000001.tar": 1},
                   [{"name": "d-000000.tar", "count": 1}, {"path": "d-000001.tar"}],
                   # what cwm.ingest writes
                   [{"name": "d-000000.tar", "samples": 1, "frames": 30, "bytes": 9},
                    {"name": "d-000001.tar", "samples": 1, "frames": 30, "bytes": 9}]):
        (tmp_path / "a" / "_index.json").write_text(json.dumps({"shards": shards, "version": 1}))
        assert resolve_spec(str(tmp_path / "a")) == paths


def test_double_colon_concatenates(shard_dir):
    got = resolve_spec(f"{shard_dir}/d-000003.tar::{shard_dir}/d-<000000..000001>.tar")
    assert names(got) == ["d-000003.tar", "d-000000.tar", "d-000001.tar"]


def test_weighted_mixture(shard_dir, tmp_path):
    write_shards(tmp_path, prefix="h", shards=2)
    spec = (f"ssv2={shard_dir}/d-{{000000..000003}}.tar:1.0,"
            f"h36m={tmp_path}/h-<000000..000001>.tar::{shard_dir}/d-000000.tar:0.5,"
            f"more={tmp_path}")
    mix = resolve_spec(spec)
    assert isinstance(mix, Mixture)
    assert [s.name for s in mix.sources] == ["ssv2", "h36m", "more"]
    assert [len(s.shards) for s in mix.sources] == [4, 3, 2]
    assert mix.probabilities == pytest.approx([1 / 2.5, 0.5 / 2.5, 1 / 2.5])


@pytest.mark.parametrize("spec, words", [
    ("{dir}/d-{{000000..000009}}.tar", "does not exist"),
    ("{dir}/nothing-*.tar", "matches no files"),
    ("{dir}/d-{{0000..00x1}}.tar", "malformed range"),
    ("{dir}/d-<0003..0001>.tar", "backwards"),
    ("{dir}/d-{{000000..000001.tar", "unbalanced"),
    ("{dir}/missing.txt", "does not exist"),
    ("a={dir}/d-000000.tar:1,{dir}/d-000001.tar", "NAME=SPEC"),
    ("a={dir}/d-000000.tar:0", "sum to zero"),
    ("{dir}/d-000000.tar::", "empty part"),
    ("  ", "empty shard spec"),
])
def test_bad_specs_raise_one_user_error_naming_the_spec(shard_dir, spec, words):
    spec = spec.format(dir=shard_dir)
    with pytest.raises(UserError) as e:
        resolve_spec(spec)
    assert words in str(e.value)
    if spec.strip():
        assert repr(spec.strip()) in str(e.value)
    assert "\n" not in str(e.value)


def test_empty_list_file_and_index_listing_missing_shard(tmp_path):
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UserError, match="names no shards"):
        resolve_spec(str(tmp_path / "empty.txt"))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "_index.json").write_text(json.dumps({"shards": [{"file": "gone.tar"}]}))
    with pytest.raises(UserError, match="gone.tar"):
        resolve_spec(str(tmp_path / "d"))
