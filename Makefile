# ferry — GNU make conventions: override PREFIX, DESTDIR, CARGO, CARGO_FLAGS;
# RUSTFLAGS is left to the caller (distributions pass their own).

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
CARGO ?= cargo
CARGO_FLAGS ?= --locked
INSTALL ?= install

BIN := target/release/ferry

# The static build: one file for air-gapped nodes, at most 3 MiB.
MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(MUSL_TARGET)/release/ferry
STATIC_MAX_BYTES := 3145728
# Crates linked into the binary, ferry itself not counted.
MAX_CRATES := 40

.PHONY: all build check fmt-check clippy test install uninstall clean demo \
	static static-check repro-check deps-check bench

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

# Not a test: times ferry against curl, skopeo and umoci on a local TLS
# registry and prints the figures for README's Performance section. Needs
# the peers `check` needs plus curl, time and perl; BENCH_DIR picks the
# scratch space (about 14 GiB, default /var/tmp). See tests/bench.sh.
bench:
	tests/bench.sh

install: build
	$(INSTALL) -Dm755 $(BIN) $(DESTDIR)$(BINDIR)/ferry
	$(INSTALL) -Dm644 man/ferry.1 $(DESTDIR)$(MANDIR)/man1/ferry.1
	$(INSTALL) -Dm644 completions/ferry.bash $(DESTDIR)$(BASHCOMPDIR)/ferry

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/ferry $(DESTDIR)$(MANDIR)/man1/ferry.1 \
		$(DESTDIR)$(BASHCOMPDIR)/ferry

# A static x86_64 binary with musl. Needs the Rust target
# (`rustup target add x86_64-unknown-linux-musl`) and a musl C compiler for
# ring's C code (`musl-gcc`, Debian package musl-tools).
static:
	@command -v musl-gcc >/dev/null || { echo "make static: musl-gcc not found;" \
		"install it with \`apt-get install musl-tools\`" >&2; exit 1; }
	@if command -v rustup >/dev/null && \
		! rustup target list --installed | grep -qx $(MUSL_TARGET); then \
		echo "make static: Rust target $(MUSL_TARGET) missing;" \
			"add it with \`rustup target add $(MUSL_TARGET)\`" >&2; exit 1; fi
	$(CARGO) build --release $(CARGO_FLAGS) --target $(MUSL_TARGET)

# The static binary is statically linked, small enough, and does a real
# job over TLS alone in an empty root with an empty environment.
static-check: static
	@file $(STATIC_BIN) | grep -Eq 'statically linked|static-pie linked' || \
		{ file $(STATIC_BIN) >&2; echo "static-check: not statically linked" >&2; exit 1; }
	@size=$$(stat -c %s $(STATIC_BIN)); echo "static-check: $(STATIC_BIN) is $$size bytes"; \
		[ $$size -le $(STATIC_MAX_BYTES) ] || { echo "static-check: larger than" \
		"$(STATIC_MAX_BYTES) bytes" >&2; exit 1; }
	$(CARGO) test $(CARGO_FLAGS) --test main -- --ignored packaging::static_binary

# Two builds of the same tree in the same path give the same bytes: build,
# keep a copy, remove every artifact of the static target, build again.
repro-check: static
	cp $(STATIC_BIN) target/ferry.repro-first
	$(CARGO) clean $(CARGO_FLAGS) --release --target $(MUSL_TARGET)
	$(CARGO) build --release $(CARGO_FLAGS) --target $(MUSL_TARGET)
	cmp target/ferry.repro-first $(STATIC_BIN)
	@rm -f target/ferry.repro-first; echo "repro-check: identical builds"

# At most $(MAX_CRATES) crates linked into the shipped binary, one version each.
deps-check:
	@$(CARGO) tree $(CARGO_FLAGS) -e normal,no-proc-macro --prefix none \
		--target $(MUSL_TARGET) | sed 's/ (.*//' | sort -u | grep -v '^ferry ' \
		> target/linked-crates.txt
	@n=$$(wc -l < target/linked-crates.txt); \
		twice=$$(cut -d' ' -f1 target/linked-crates.txt | uniq -d); \
		echo "deps-check: $$n crates linked"; \
		[ -z "$$twice" ] || { echo "deps-check: more than one version of:" $$twice >&2; exit 1; }; \
		[ $$n -le $(MAX_CRATES) ] || { cat target/linked-crates.txt >&2; \
		echo "deps-check: more than $(MAX_CRATES) crates linked" >&2; exit 1; }

clean:
	$(CARGO) clean

# The main job, offline: a local TLS registry, push a directory, pull,
# inspect, unpack, compare; installs docker-registry first when root.
demo: build
	FERRY=$(BIN) bash tests/demo.sh
