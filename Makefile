# gst-mjpeg — the two commands a new user needs: `make demo` and `make test`.
# Both install what is missing (Debian packages via apt-get) first.

SHELL := /bin/bash
CARGO ?= cargo

# Build and run dependencies (Debian 12).
DEB_BUILD := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
             gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
# Extra packages the test suite uses (interop with souphttpsrc, a real browser).
DEB_TEST := chromium curl

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

.PHONY: all deps test-deps check-cargo build demo test fmt-check clippy cargo-test bench

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

## Formatting, lints and the whole test suite.
test: test-deps fmt-check clippy cargo-test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

cargo-test:
	$(CARGO) test --all-targets --no-fail-fast
	$(CARGO) test --doc

bench: deps
	$(CARGO) bench --bench parser
