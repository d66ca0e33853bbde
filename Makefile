# hepml: `make course` runs the course, `make test` runs the tests.
# Both create and fill their own virtual environment in .venv (pip only).

PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip -q
BUILD_DEPS := setuptools wheel "numpy>=2.0" scipy-openblas32==0.3.34.481.3
PYTEST_ARGS ?=

.PHONY: test course bench build ctest clean

$(VPY):
	$(PY) -m venv $(VENV)

$(VENV)/.installed-%: pyproject.toml setup.py | $(VPY)
	$(PIP) install -U pip $(BUILD_DEPS)
	$(PIP) install --no-build-isolation -e ".[$*]"
	touch $@

# Rebuild the extension in place (incremental: only when a C file changed).
build: | $(VPY)
	$(VPY) setup.py -q build_ext --inplace

test: $(VENV)/.installed-test
	$(VPY) setup.py -q build_ext --inplace
	$(MAKE) ctest
	$(VPY) -m pytest $(PYTEST_ARGS)

course: $(VENV)/.installed-course
	$(VPY) setup.py -q build_ext --inplace
	$(VPY) -m hepml.course run

bench: $(VENV)/.installed-bench
	$(VPY) setup.py -q build_ext --inplace
	$(VPY) -m bench.run_all

# The C kernels' own tests, under AddressSanitizer and UndefinedBehaviorSanitizer.
OB_DIR = $(shell $(VPY) -c "import scipy_openblas32 as o; print(o.get_lib_dir().rsplit('/', 1)[0])")
CTEST_FLAGS = -std=c11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer -fopenmp -Wall -Wno-unknown-pragmas -Icsrc/kernels -Itests/c \
	-DHM_SCIPY_OPENBLAS -I$(OB_DIR)/include -L$(OB_DIR)/lib -lscipy_openblas -Wl,-rpath,$(OB_DIR)/lib -lm

ctest: | $(VPY)
	@mkdir -p build/ctest
	@set -e; for t in tests/c/test_*.c; do \
		name=$$(basename $$t .c); \
		gcc $$t csrc/kernels/*.c $(CTEST_FLAGS) -o build/ctest/$$name; \
		ASAN_OPTIONS=detect_leaks=1 build/ctest/$$name; \
	done

clean:
	rm -rf build hepml/_C*.so *.egg-info
