# Two commands do all the set-up on a fresh machine:
#   make demo   builds compound-watch, writes the SYNTHETIC sample and scans it  -> out/myawaddy/
#   make test   format check, clippy, the whole test suite and the docs            (what CI runs)
# Both first install GDAL's development files if pkg-config cannot find them.

CARGO  ?= cargo
SAMPLE ?= samples/myawaddy
OUT    ?= out/myawaddy
SHARED ?= ../shared

.PHONY: demo test gdal sample bench clean-demo

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

# The strict RFC 7946 checker in $(SHARED)/tools needs shapely; tests skip it (saying so) without.
test: gdal
	@if [ -d $(SHARED)/tools ] && ! python3 -c 'import shapely' 2>/dev/null; then \
	  python3 -m pip install -q shapely 2>/dev/null || echo "could not install shapely: the RFC 7946 check will be skipped"; fi
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

bench: gdal
	$(CARGO) bench --bench detect

clean-demo:
	rm -rf $(SAMPLE) out

# Fuzzing (fuzz/README.md): coverage-guided targets for the parsers of untrusted files, with
# cargo-afl and AFL++ on stable Rust. `make fuzz-smoke` runs each target a few seconds (what the test
# flow calls); `make fuzz` runs each for FUZZ_EXECS executions.
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
