# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing, install the system packages and the project, then run.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.cwm-installed
DEMO    ?= demo
# torch is pinned to the CPU build that sits on local disk; an unpinned torch pulls a multi-GB
# CUDA build. setup.cfg itself stays permissive (torch>=2.2) for users with their own torch.
TORCH   ?= torch==2.13.0
SYSPKGS := ffmpeg libosmesa6 libtcmalloc-minimal4

.PHONY: all venv sysdeps test demo bench clean
all: test

sysdeps:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	ldconfig -p 2>/dev/null | grep -q libOSMesa || missing="$$missing libosmesa6"; \
	ldconfig -p 2>/dev/null | grep -q libtcmalloc || missing="$$missing libtcmalloc-minimal4"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: sysdeps $(STAMP)

test: venv
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/python -m pytest -q tests

demo: venv
	MUJOCO_GL=$${MUJOCO_GL:-egl} PATH=$(abspath $(BIN)):$$PATH bash scripts/demo.sh $(DEMO)

bench: venv
	PATH=$(abspath $(BIN)):$$PATH bash bench/run_all.sh

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
