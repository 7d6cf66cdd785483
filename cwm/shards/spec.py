"""Shard specs: the one string a user types to name training data, resolved to shard paths.

Accepted forms (they compose):

    shards/ssv2-{000000..000999}.tar      brace range (zero-padded to the width of the bounds)
    shards/<0000..0999>.tar               the design card's angle form, same meaning
    shards/{train,val}-000000.tar         brace alternatives
    shards/*.tar                          glob (sorted)
    shards/                               a directory: the shards its `_index.json` lists
    shards.txt                            a list file: one spec per line, `#` comments, paths
                                          relative to the list file
    A::B                                  several specs, concatenated
    ssv2=SPEC:1.0,h36m=SPEC:0.5           a weighted mixture of named datasets (weight optional,
                                          default 1.0); training draws each clip from dataset i
                                          with probability w_i / sum(w), whatever their sizes

URLs (`http://`, `https://`, `pipe:`, ...) are expanded but not checked for existence. Anything
local that matches nothing, a missing file and a malformed range raise one `UserError` naming
the spec.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cwm.errors import UserError
from cwm.shards.index import read_index

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(//)?")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
_MIXTURE_NAME = re.compile(r"^[A-Za-z0-9_-]+=")
_GLOB_CHARS = re.compile(r"[*?\[]")
_MAX_SHARDS = 10_000_000


@dataclass
class Source:
    """One dataset of a spec: its shard paths and its share of training clips."""

    name: str
    shards: list[str]
    weight: float = 1.0
    # Samples per shard when an `_index.json` says so (exact evaluation epochs, inspect).
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Mixture:
    """A weighted mixture of datasets (`ssv2=SPEC:1.0,h36m=SPEC:0.5`)."""

    sources: list[Source]

    @property
    def shards(self) -> list[str]:
        return [s for src in self.sources for s in src.shards]

    @property
    def probabilities(self) -> list[float]:
        total = sum(src.weight for src in self.sources)
        return [src.weight / total for src in self.sources]


def resolve_spec(spec: str) -> list[str] | Mixture:
    """A plain spec -> its shard paths (in order); a mixture spec -> a `Mixture`."""
    sources = resolve_sources(spec)
    if is_mixture(spec):
        return Mixture(sources)
    return sources[0].shards


def resolve_sources(spec: str) -> list[Source]:
    """Every spec as a list of datasets: one unnamed `Source` for a plain spec."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"empty shard spec {spec!r}")
    spec = spec.strip()
    if not is_mixture(spec):
        shards, counts = _resolve_plain(spec, spec)
        return [Source(name="", shards=shards, weight=1.0, counts=counts)]
    sources = []
    for part in _split_top_level(spec, ","):
        if not _MIXTURE_NAME.match(part.strip()):
            raise UserError(f"mixture entry {part!r} is not NAME=SPEC[:WEIGHT] in shard spec {spec!r}")
        name, rest = part.strip().split("=", 1)
        sub, weight = _split_weight(rest, spec)
        if any(s.name == name for s in sources):
            raise UserError(f"dataset {name!r} appears twice in shard spec {spec!r}")
        shards, counts = _resolve_plain(sub, spec)
        sources.append(Source(name=name, shards=shards, weight=weight, counts=counts))
    if sum(s.weight for s in sources) <= 0:
        raise UserError(f"mixture weights sum to zero in shard spec {spec!r}")
    return sources


def is_mixture(spec: str) -> bool:
    return bool(_MIXTURE_NAME.match(spec.strip())) and not _URL.match(spec.strip())


def _split_weight(part: str, whole: str) -> tuple[str, float]:
    # The weight is the text after the last single ':'; `::` belongs to the spec itself.
    head, sep, tail = part.rpartition(":")
    if not sep or head.endswith(":") or not re.fullmatch(r"[0-9.eE+-]+", tail):
        return part, 1.0
    try:
        weight = float(tail)
    except ValueError:
        raise UserError(f"bad mixture weight {tail!r} in shard spec {whole!r}") from None
    if weight < 0 or weight != weight:
        raise UserError(f"mixture weight must be >= 0, got {tail!r} in shard spec {whole!r}")
    return head, weight


def _resolve_plain(spec: str, whole: str) -> tuple[list[str], dict[str, int]]:
    shards: list[str] = []
    counts: dict[str, int] = {}
    for part in spec.split("::"):
        part = part.strip()
        if not part:
            raise UserError(f"empty part between '::' in shard spec {whole!r}")
        got, got_counts = _resolve_one(part, whole, depth=0)
        shards.extend(got)
        counts.update(got_counts)
    if not shards:
        raise UserError(f"shard spec {whole!r} matches no shards")
    return shards, counts


def _resolve_one(part: str, whole: str, depth: int) -> tuple[list[str], dict[str, int]]:
    if depth > 8:
        raise UserError(f"list files nest too deeply in shard spec {whole!r}")
    if _URL.match(part) and not os.path.exists(part):
        return expand_braces(part, whole), {}
    part = os.path.expanduser(part)
    if os.path.isdir(part):
        return read_index(Path(part), whole)
    if os.path.isfile(part) and not part.endswith(".tar") and not _GLOB_CHARS.search(part):
        return _read_list_file(Path(part), whole, depth)
    out: list[str] = []
    for path in expand_braces(part, whole):
        if _GLOB_CHARS.search(path):
            matches = sorted(p for p in glob.glob(path) if os.path.isfile(p))
            if not matches:
                raise UserError(f"{path!r} matches no files (shard spec {whole!r})")
            out.extend(matches)
        elif os.path.isfile(path):
            out.append(path)
        else:
            raise UserError(f"shard {path!r} does not exist (shard spec {whole!r})")
    return out, {}


def _read_list_file(path: Path, whole: str, depth: int) -> tuple[list[str], dict[str, int]]:
    shards: list[str] = []
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not _URL.match(line) and not os.path.isabs(line):
            line = str(path.parent / line)
        got, got_counts = _resolve_one(line, whole, depth + 1)
        shards.extend(got)
        counts.update(got_counts)
    if not shards:
        raise UserError(f"list file {str(path)!r} names no shards (shard spec {whole!r})")
    return shards, counts


def expand_braces(pattern: str, whole: str | None = None) -> list[str]:
    """Expand `{a..b}`, `<a..b>` and `{x,y}` groups (nested allowed), left to right."""
    whole = pattern if whole is None else whole
    out = [""]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch in "{<":
            close = "}" if ch == "{" else ">"
            j = _matching(pattern, i, ch, close)
            if j < 0:
                if ch == "<":
                    out = [o + ch for o in out]
                    i += 1
                    continue
                raise UserError(f"unbalanced '{{' in shard spec {whole!r}")
            body = pattern[i + 1 : j]
            alternatives = _group(body, ch, whole)
            if alternatives is None:  # a literal '<...>' that is not a range
                out = [o + pattern[i : j + 1] for o in out]
            else:
                out = [o + a for o in out for a in alternatives]
                if len(out) > _MAX_SHARDS:
                    raise UserError(f"shard spec {whole!r} expands to more than {_MAX_SHARDS} names")
            i = j + 1
        elif ch == "}":
            raise UserError(f"unbalanced '}}' in shard spec {whole!r}")
        else:
            out = [o + ch for o in out]
            i += 1
    return out


def _matching(s: str, start: int, open_ch: str, close_ch: str) -> int:
    level = 0
    for k in range(start, len(s)):
        if s[k] == open_ch:
            level += 1
        elif s[k] == close_ch:
            level -= 1
            if level == 0:
                return k
    return -1


def _group(body: str, open_ch: str, whole: str) -> list[str] | None:
    if ".." in body and "," not in body:
        m = _RANGE.match(body)
        if not m:
            raise UserError(f"malformed range {open_ch}{body}{'}' if open_ch == '{' else '>'} "
                            f"in shard spec {whole!r} (want e.g. {{000000..000099}})")
        lo_s, hi_s = m.groups()
        lo, hi = int(lo_s), int(hi_s)
        if lo > hi:
            raise UserError(f"range {body!r} runs backwards in shard spec {whole!r}")
        if hi - lo >= _MAX_SHARDS:
            raise UserError(f"range {body!r} is too large in shard spec {whole!r}")
        width = len(lo_s) if lo_s.startswith("0") and len(lo_s) > 1 else 0
        width = max(width, len(hi_s) if hi_s.startswith("0") else 0)
        return [str(v).zfill(width) for v in range(lo, hi + 1)]
    if open_ch == "<":
        return None
    out: list[str] = []
    for alt in _split_top_level(body, ","):
        out.extend(expand_braces(alt, whole))
    return out


def _split_top_level(s: str, sep: str) -> list[str]:
    """Split at `sep` outside any {...} group (brace alternatives contain commas too)."""
    parts, level, start = [], 0, 0
    for k, ch in enumerate(s):
        if ch == "{":
            level += 1
        elif ch == "}":
            level -= 1
        elif ch == sep and level == 0:
            parts.append(s[start:k])
            start = k + 1
    parts.append(s[start:])
    return parts
