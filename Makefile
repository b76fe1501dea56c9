# gst-mjpeg — the two commands a new user needs: `make demo` and `make test`.
# Both install what is missing (Debian packages via apt-get) first.

SHELL := /bin/bash
CARGO ?= cargo

# Build and run dependencies (Debian 12).
DEB_BUILD := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
             gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
# Extra packages the test suite uses (interop with souphttpsrc, a real browser,
# the Python and C embedding examples, the Prometheus text parser of /metrics).
DEB_TEST := chromium curl python3-gi gir1.2-gstreamer-1.0 python3-prometheus-client gcc make
# Extra packages of `make test-integration` (meson install, Firefox, nginx).
DEB_INTEGRATION := meson ninja-build firefox-esr nginx

APT_GET := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $$missing; \
	fi
endef

.PHONY: all deps test-deps check-cargo build demo test fmt-check clippy cargo-test bench fuzz fuzz-short fuzz-tool

all: build

check-cargo:
	@command -v $(CARGO) >/dev/null || { \
	  echo "cargo not found: install the Rust toolchain (1.88 or newer) with rustup, then re-run."; exit 1; }

deps: check-cargo
	$(call install_missing,$(DEB_BUILD))

test-deps: deps
	$(call install_missing,$(DEB_TEST))

build: deps
	$(CARGO) build --release

## A local mjpegsink fed by videotestsrc, read back by mjpegsrc: frames, fps, stats.
demo: deps
	$(CARGO) run --release --example demo

## Formatting, lints, docs and the whole test suite.
test: test-deps fmt-check clippy doc fuzz-short cargo-test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

# Ends with one summary line over every test binary ("N passed, N failed").
cargo-test:
	@mkdir -p target
	@set -o pipefail; $(CARGO) test --all-targets --no-fail-fast 2>&1 | tee target/test-output.log; \
	status=$$?; \
	awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } \
	     END { printf "tests: %d passed, %d failed\n", p, f }' target/test-output.log; \
	exit $$status

.PHONY: doc deny integration-deps test-integration test-install

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

integration-deps: test-deps
	$(call install_missing,$(DEB_INTEGRATION))

## Dependency licences, bans and sources (deny.toml), offline. The advisory
## check needs the RustSec database from the network: `cargo deny check
## advisories` where it is reachable. Skipped with a note where cargo-deny
## cannot be installed.
deny: check-cargo
	@if $(CARGO) deny --version >/dev/null 2>&1 || $(CARGO) install cargo-deny --locked; then \
	  $(CARGO) deny --offline check licenses bans sources; \
	else echo "cargo-deny unavailable: dependency checks skipped"; fi

## The slow checks, run after `make test` (and by .ci/run): both install
## paths (cargo + GST_PLUGIN_PATH, meson into a temporary prefix), headless
## Firefox, nginx in front of mjpegsink, cargo-deny.
test-integration: integration-deps test-install deny
	$(CARGO) test --test mjpegsink_browser --test nginx -- --ignored --test-threads=1

## tests/install.sh; with MESON_TEST=1 (the default) it also runs
## `meson test --suite quick` (unit tests, gst-inspect and the README's
## gst-check tests, built through meson; the whole suite is `make test`).
MESON_TEST ?= 1
test-install: integration-deps
	CARGO=$(CARGO) MESON_TEST=$(MESON_TEST) bash tests/install.sh

bench: deps
	$(CARGO) bench --bench parser

## Soak (bench/soak.rs): a relay fed by a misbehaving camera, churning clients, flat memory (SOAK_MINUTES, default 10).
SOAK_MINUTES ?= 10
.PHONY: soak
soak: deps
	$(CARGO) run --release --example soak -- --minutes $(SOAK_MINUTES)

# Fuzzing (cargo-fuzz, libFuzzer). The toolchain is stable: RUSTC_BOOTSTRAP
# lets cargo-fuzz use the sanitizer flags it needs.
FUZZ_TARGETS := $(shell sed -n 's/^name = "\(.*\)"$$/\1/p' fuzz/Cargo.toml | grep -v fuzz)
FUZZ_SECONDS ?= 600
FUZZ_SHORT_SECONDS ?= 30
# `cargo fuzz run` has no --locked: check fuzz/Cargo.lock first (as --locked
# would), so a fuzz run never rewrites it and `make test` leaves the tree clean.
FUZZ_LOCK_CHECK = $(CARGO) metadata --manifest-path fuzz/Cargo.toml --locked --format-version 1 >/dev/null || \
	{ echo "fuzz/Cargo.lock is stale: run 'cargo update -w' in fuzz/ and commit it"; exit 1; }
FUZZ_RUN = $(FUZZ_LOCK_CHECK); \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(1) -rss_limit_mb=2048 -print_final_stats=1 2>&1 | \
	    grep -E "^(Done|stat::number_of_executed_units|==|SUMMARY|thread)" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

fuzz-tool: check-cargo
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

## Long fuzz runs: FUZZ_SECONDS per target (default 600).
fuzz: deps fuzz-tool
	@$(call FUZZ_RUN,$(FUZZ_SECONDS))

## The short runs inside `make test`; skipped with a note where cargo-fuzz cannot be installed.
fuzz-short: deps
	@if $(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked; then \
	  $(call FUZZ_RUN,$(FUZZ_SHORT_SECONDS)); \
	else echo "cargo-fuzz unavailable: short fuzz runs skipped"; fi
