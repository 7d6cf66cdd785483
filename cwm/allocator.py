"""The memory allocator of the training commands: tcmalloc where the system has it.

A paper-size training step on CPU allocates and frees activation tensors of tens of MB, dozens
of times per step. glibc's malloc hands every block above 32 MB (its largest mmap threshold)
back to the kernel when it is freed, so the next step maps it again and takes one page fault per
4 KiB page it touches: ~5 million faults per pre-training step. tcmalloc keeps freed memory for
reuse: ~1 million, and a paper-preset step 1.35-1.6x faster (bench/RESULTS.md, "allocator").
Small models (the RL `small` preset) neither gain nor lose.

An allocator is chosen before the process starts, so `cwm-train` and `cwm-rl` re-execute
themselves once with tcmalloc in `LD_PRELOAD` when it is installed (Debian/Ubuntu:
`libtcmalloc-minimal4`; the Makefile installs it). `CWM_ALLOCATOR` decides:

    auto      (default) tcmalloc when found, else the system's malloc
    tcmalloc  tcmalloc; an error if it is not installed
    system    the system's malloc, no re-execution

Child processes (data-loader workers, env processes) inherit the choice. Only the command-line
entry points re-execute; `cwm.cli.*.main(argv)` called from Python never does.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

from cwm.errors import UserError

CHOICES = ("auto", "tcmalloc", "system")
_SEARCH = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
           "/usr/local/lib")
_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
_MARK = "CWM_ALLOCATOR_APPLIED"     # set in the re-executed process: never loop


def find_tcmalloc() -> str | None:
    """Path of an installed tcmalloc shared library, or None."""
    for directory in _SEARCH:
        for name in _NAMES:
            path = Path(directory) / name
            if path.exists():
                return str(path)
    for name in ("tcmalloc_minimal", "tcmalloc"):
        found = ctypes.util.find_library(name)
        if found and Path(found).is_absolute() and Path(found).exists():
            return found
    return None


def choice(env: dict[str, str] | None = None) -> str:
    """The `CWM_ALLOCATOR` setting of `env` (default: this process's environment)."""
    value = (os.environ if env is None else env).get("CWM_ALLOCATOR", "auto").strip().lower()
    value = value or "auto"
    if value not in CHOICES:
        raise UserError(f"CWM_ALLOCATOR={value!r} is not one of {', '.join(CHOICES)}")
    return value


def in_use() -> str:
    """'tcmalloc' when this process runs with tcmalloc preloaded, else 'system'."""
    return "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "system"


def preload_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: os.environ) with tcmalloc added to LD_PRELOAD as `CWM_ALLOCATOR` asks;
    unchanged when it asks for the system's malloc, tcmalloc is missing, or already there."""
    env = dict(os.environ if env is None else env)
    want = choice(env)
    if want == "system" or "tcmalloc" in env.get("LD_PRELOAD", ""):
        return env
    lib = find_tcmalloc()
    if lib is None:
        if want == "tcmalloc":
            raise UserError("CWM_ALLOCATOR=tcmalloc but no tcmalloc library is installed "
                            "(apt-get install libtcmalloc-minimal4), or set CWM_ALLOCATOR=system")
        return env
    env["LD_PRELOAD"] = " ".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p)
    return env


def reexec_with_preferred_allocator() -> None:
    """Replace this process by the same command under tcmalloc, when that is the choice and it
    is not in use yet. Call first thing in a command-line entry point (before torch loads)."""
    if os.environ.get(_MARK) or choice() == "system" or in_use() == "tcmalloc":
        return
    env = preload_env()
    if "tcmalloc" not in env.get("LD_PRELOAD", ""):
        return
    env[_MARK] = "1"
    argv = [sys.executable, *sys.orig_argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
