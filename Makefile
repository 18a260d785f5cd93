# napari-emseg: `make run` (the main job) and `make test` (the test suite) do all set-up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch that these machines carry; users with a GPU install their CUDA build.
TORCH_SPEC ?= torch==2.13.0
OUT ?= out
XVFB_DEBS := xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libfontconfig1 libdbus-1-3 \
	libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-cursor0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CLI := $(VENV)/bin/napari-emseg

.PHONY: run headless-run test test-quick lint screenshot clean setup xvfb bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" -e ".[all,testing]"
	@touch $@

xvfb:
	@command -v Xvfb >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(XVFB_DEBS) >/dev/null; }

test: setup xvfb
	$(PY) -m pytest

# The edit-test loop: every test but those marked slow (each over ~3 s), in under a minute.
test-quick: setup xvfb
	$(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

# With a display: napari with the sample stack and the widget docked. Without one: the CLI
# pipeline on the sample (labels TIFF + scores) and a screenshot of the plugin under Xvfb.
run: setup
	@if [ -n "$$DISPLAY" ]; then \
		$(PY) scripts/run_gui.py; \
	else \
		$(MAKE) --no-print-directory headless-run; \
	fi

headless-run: xvfb
	@mkdir -p $(OUT)
	$(CLI) sample -o $(OUT)/sample.tif --labels-out $(OUT)/sample-gt.tif --overwrite
	$(CLI) segment $(OUT)/sample.tif -o $(OUT)/sample-labels.tif \
		--membrane-out $(OUT)/sample-membrane.tif --overwrite
	$(CLI) evaluate --pred $(OUT)/sample-labels.tif --gt $(OUT)/sample-gt.tif
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) scripts/screenshot.py --sample \
		-o $(OUT)/screenshot.png
	@echo "wrote $(OUT)/sample-labels.tif and $(OUT)/screenshot.png"

# Speed of the engine on this machine: one JSON object (see docs/performance.md).
bench: setup
	$(CLI) benchmark --json

# The README's screenshot: the whole loop on real EM (ISBI 2012, from ../shared/data).
screenshot: setup xvfb
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) scripts/screenshot.py -o docs/images/plugin-isbi.png

clean:
	rm -rf $(OUT) build dist .pytest_cache
