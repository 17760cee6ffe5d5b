# Two commands do all the set-up on a fresh machine:
#   make demo   builds compound-watch, writes the SYNTHETIC sample and scans it  -> out/myawaddy/
#   make test   format check, clippy, the whole test suite, the benches once, the docs (what CI runs)
# `make install` puts compound-watch on the PATH (cargo install: ~/.cargo/bin/compound-watch).
# Both first install GDAL's development files if pkg-config cannot find them. `make test` also
# installs what its tests use (shapely and stac-validator for python3, headless QGIS) and looks for $(SHARED), the
# read-only data and tools beside the clone. A test whose prerequisite is still missing fails when
# CI is set; otherwise it is skipped, and the last line of `make test` counts the skips.

CARGO  ?= cargo
SAMPLE ?= samples/myawaddy
OUT    ?= out/myawaddy
SHARED ?= ../shared
SKIPS  := target/test-skips

.PHONY: demo test gdal shapely stac-validator qgis shared prerequisites sample bench clean-demo accuracy deploy-check install demo-map

gdal:
	@if pkg-config --exists gdal 2>/dev/null; then \
	  echo "GDAL $$(pkg-config --modversion gdal) found"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "GDAL not found: installing libgdal-dev with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    libgdal-dev gdal-bin pkg-config >/dev/null && \
	  echo "GDAL $$(pkg-config --modversion gdal) installed"; \
	else \
	  echo "GDAL >= 3.6 with its development files is required and pkg-config cannot find it."; \
	  echo "  macOS:   brew install gdal pkg-config"; \
	  echo "  Fedora:  sudo dnf install gdal-devel pkgconf"; \
	  echo "  Arch:    sudo pacman -S gdal pkgconf"; \
	  echo "  conda:   conda install -c conda-forge gdal pkg-config"; \
	  exit 1; \
	fi

$(SAMPLE)/catalog.json: | gdal
	$(CARGO) run --release --quiet -- sample --out $(SAMPLE)

sample: $(SAMPLE)/catalog.json

demo: gdal $(SAMPLE)/catalog.json
	$(CARGO) run --release --quiet -- scan --aoi aoi/myawaddy.geojson --source $(SAMPLE)/catalog.json \
	  --from 2021-07 --to 2023-06 --out $(OUT) --cache out/cache
	@echo "Open $(OUT)/project.qgs in QGIS, or $(OUT)/summary.html in a browser."

# The binary into ~/.cargo/bin (on the PATH rustup sets up), for the commands typed by hand and cron.
install: gdal
	$(CARGO) install --locked --path .
	@echo "Installed $$(command -v compound-watch || echo $${CARGO_HOME:-$$HOME/.cargo}/bin/compound-watch)"

# The README's picture: the demo's own project.qgs rendered by headless QGIS, every polygon shown
# (docs/render_project.py; needs `make qgis`).
demo-map: demo
	QT_QPA_PLATFORM=offscreen /usr/bin/python3 docs/render_project.py $(OUT)/project.qgs docs/demo-map.png --width 1000

# Prerequisites of the tests. Outside CI a missing one is reported here and its tests are skipped
# (and counted); with CI set, make stops here with the reason.
MISSING = { echo "$$1"; if [ -n "$$CI" ]; then exit 1; fi; }

shapely:
	@missing() $(MISSING); \
	if python3 -c 'import shapely' 2>/dev/null; then \
	  echo "shapely $$(python3 -c 'import shapely; print(shapely.__version__)') found for $$(command -v python3)"; \
	else \
	  echo "shapely not found: installing it with pip for $$(command -v python3)"; \
	  python3 -m pip install -q shapely || \
	    missing "could not install shapely (python3 -m pip install shapely): the RFC 7946 checks cannot run"; \
	fi

# stac-validator checks the STAC Item of a scan's outputs; tests point it at the STAC 1.1.0 core
# schemas that pystac bundles, so it never fetches schemas.stacspec.org.
stac-validator:
	@missing() $(MISSING); \
	if command -v stac-validator >/dev/null 2>&1 && python3 -c 'import pystac' 2>/dev/null; then \
	  echo "stac-validator found: $$(command -v stac-validator)"; \
	else \
	  echo "stac-validator not found: installing stac-validator and pystac with pip for $$(command -v python3)"; \
	  python3 -m pip install -q stac-validator==4.1.2 pystac==1.15.2 || \
	    missing "could not install stac-validator (python3 -m pip install stac-validator pystac): the STAC Item check cannot run"; \
	fi

# Headless QGIS from Debian's packages, as $(SHARED)/tools/qgis/install.sh installs it (~1.5 min).
qgis:
	@missing() $(MISSING); \
	if /usr/bin/python3 -c 'import qgis.core' 2>/dev/null; then \
	  echo "QGIS $$(/usr/bin/python3 -c 'import qgis.core; print(qgis.core.Qgis.QGIS_VERSION)' 2>/dev/null) found"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "QGIS not found: installing qgis, qgis-providers, python3-qgis with apt-get (~1.5 min)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	      qgis qgis-providers python3-qgis gdal-bin python3-gdal >/dev/null && \
	    echo "QGIS $$(/usr/bin/python3 -c 'import qgis.core; print(qgis.core.Qgis.QGIS_VERSION)' 2>/dev/null) installed"; } || \
	    missing "could not install QGIS with apt-get: the QGIS checks cannot run"; \
	else \
	  missing "headless QGIS (/usr/bin/python3 with qgis.core) is needed by the QGIS checks and apt-get is absent"; \
	fi

shared:
	@missing() $(MISSING); \
	if [ -d $(SHARED)/tools ] && [ -d $(SHARED)/data ]; then echo "shared data and tools: $(abspath $(SHARED))"; \
	else missing "$(SHARED) not found (make test SHARED=/path/to/shared): the OSCD, recorded-API, real-COG, RFC 7946 and QGIS tests cannot run"; fi

prerequisites: gdal shapely stac-validator qgis shared

# Each skipped test leaves a file in $(SKIPS) naming its reason (cargo hides a passing test's stderr).
test: prerequisites
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	rm -rf $(SKIPS)
	COMPOUND_WATCH_SHARED=$(abspath $(SHARED)) $(CARGO) test
	$(CARGO) test --benches
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps
	cd testbed && $(CARGO) fmt --check && $(CARGO) clippy --locked --all-targets -- -D warnings && $(CARGO) test --locked
	@n=$$(ls $(SKIPS) 2>/dev/null | wc -l); \
	for f in $(SKIPS)/*; do [ -f "$$f" ] && echo "skipped $$(basename $$f): $$(cat $$f)"; done; \
	echo "skipped tests: $$n"

# Per-stage criterion benches (the kernels, the window cache), then whole scans: cold and warm, 300 x
# 300 and 1200 x 1200 px, one and two threads (benches/scan.sh; RUNS, SIZES, PEER: see its header).
bench: gdal
	$(CARGO) bench --bench detect
	$(CARGO) bench --bench cache
	$(CARGO) build --release --quiet
	benches/scan.sh

clean-demo:
	rm -rf $(SAMPLE) out

# Accuracy on the independent testbed (testbed/README.md): generates its scenarios once (~1 min of
# CPU each, 130 MB each, in testbed/runs/), scans each with the dev build, scores the reports and
# writes testbed/RESULTS.md. Not part of `make test`. ACCURACY_ARGS: e.g. --only tuning.
ACCURACY_ARGS ?=
accuracy: gdal
	testbed/run.sh $(ACCURACY_ARGS)

# Fuzzing (fuzz/README.md): coverage-guided targets for the parsers of untrusted files, with
# cargo-afl and AFL++ on stable Rust. `make fuzz-smoke` runs each instrumented target FUZZ_SECONDS
# seconds; `make fuzz` runs each for FUZZ_EXECS executions. Both need the instrumented build
# (15-40 min the first time), so `make test` does not call them: its `cargo test` runs the same
# target bodies (fuzz/src/targets.rs) uninstrumented, on every corpus file plus 20,000 seeded
# mutations each (tests/it/fuzz_smoke.rs), a replay with blind mutations, not coverage-guided.
FUZZ_TARGETS ?= aoi bbox stac_item item_collection report state
FUZZ_SECONDS ?= 5
FUZZ_EXECS   ?= 1000000
# The instrumented build's optimisation level: 1 builds in half the time of cargo-afl's default 3.
AFL_OPT_LEVEL ?= 1

.PHONY: fuzz-setup fuzz-build fuzz-smoke fuzz

fuzz-setup:
	@command -v cargo-afl >/dev/null 2>&1 || $(CARGO) install cargo-afl --locked --version 0.18.2
	@$(CARGO) afl fuzz -h 2>&1 | grep -q 'Required parameters' || $(CARGO) afl config --build

fuzz-build: fuzz-setup gdal
	cd fuzz && AFL_OPT_LEVEL=$(AFL_OPT_LEVEL) $(CARGO) afl build --release --locked

fuzz-smoke: fuzz-build
	@for t in $(FUZZ_TARGETS); do fuzz/run.sh $$t -V $(FUZZ_SECONDS) || exit 1; done

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do fuzz/run.sh $$t -E $(FUZZ_EXECS) || exit 1; done

# The deploy recipes, offline: the Kubernetes manifests against the API schemas (kubernetes-validate
# from PyPI, in a venv under target/), the Slurm script's syntax. Building the image needs a
# container runtime and is not done here.
deploy-check:
	@[ -x target/deploy-venv/bin/kubernetes-validate ] || { python3 -m venv target/deploy-venv && \
	  target/deploy-venv/bin/pip install -q kubernetes-validate; }
	target/deploy-venv/bin/kubernetes-validate --strict deploy/k8s/job.yaml deploy/k8s/gather.yaml
	bash -n deploy/slurm/submit.sh
