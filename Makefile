# ferry — GNU make conventions: override PREFIX, DESTDIR, CARGO, CARGO_FLAGS;
# RUSTFLAGS is left to the caller (distributions pass their own).

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
CARGO ?= cargo
CARGO_FLAGS ?= --locked
INSTALL ?= install

BIN := target/release/ferry

.PHONY: all build check fmt-check clippy test install uninstall clean demo

all: build

build:
	$(CARGO) build --release $(CARGO_FLAGS)

# Everything CI runs: formatting, lints, unit and integration tests. The
# integration tests need docker-registry, skopeo, umoci, openssl, htpasswd,
# strace and mandoc; .ci/run installs them.
check: fmt-check clippy test

fmt-check:
	$(CARGO) fmt --check

clippy:
	$(CARGO) clippy $(CARGO_FLAGS) --all-targets -- -D warnings

test:
	$(CARGO) test $(CARGO_FLAGS)

install: build
	$(INSTALL) -Dm755 $(BIN) $(DESTDIR)$(BINDIR)/ferry
	$(INSTALL) -Dm644 man/ferry.1 $(DESTDIR)$(MANDIR)/man1/ferry.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/ferry $(DESTDIR)$(MANDIR)/man1/ferry.1

clean:
	$(CARGO) clean

# The main job, offline: a local TLS registry, push a directory, pull,
# inspect, unpack, compare; installs docker-registry first when root.
demo: build
	FERRY=$(BIN) bash tests/demo.sh
