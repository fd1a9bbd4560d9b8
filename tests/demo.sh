#!/usr/bin/env bash
# make demo: ferry's main job, offline, against a registry on this machine.
# Starts Debian's docker-registry on 127.0.0.1 with a fresh self-signed
# certificate, pushes a small directory as an image, pulls it into an OCI
# layout, inspects it, unpacks it, checks the tree came back whole, and
# stops the registry. Leaves nothing running and nothing behind.
#
# FERRY names the binary to run (default: target/release/ferry).
set -euo pipefail

ferry=${FERRY:-target/release/ferry}
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

need() {  # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing $2"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
    else
        echo "demo: $1 not found; install it with: apt-get install $2" >&2
        exit 1
    fi
}
need docker-registry docker-registry
need openssl openssl

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo.XXXXXX")
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A certificate made the way internal registries make theirs.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null

# A free port: the first in the range nobody answers on.
port=
for p in $(seq 5170 5270); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "demo: no free port in 5170-5270" >&2; exit 1; }

cat >"$work/registry.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $work/storage } }
http:
  addr: 127.0.0.1:$port
  secret: ferry-demo
  tls: { certificate: $work/cert.pem, key: $work/key.pem }
YML
say "starting a registry on 127.0.0.1:$port"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
    "$ferry" -q --ca-cert "$work/cert.pem" catalog "127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 0.1
done

# A small root filesystem.
tree=$work/tree
mkdir -p "$tree/bin" "$tree/etc"
printf '#!/bin/sh\necho hello from a ferry image\n' >"$tree/bin/hello"
chmod 755 "$tree/bin/hello"
echo "ferry demo" >"$tree/etc/motd"
ln -s motd "$tree/etc/issue"

image=127.0.0.1:$port/demo/hello:1
f() { "$ferry" --ca-cert "$work/cert.pem" "$@"; }

say "ferry push $tree $image"
f push "$tree" "$image"
say "ferry pull $image $work/layout"
f pull "$image" "$work/layout"
say "ferry inspect $image"
f inspect "$image"
say "ferry unpack $work/layout $work/rootfs"
f unpack "$work/layout" "$work/rootfs"
diff -r "$tree" "$work/rootfs" --exclude=ch
say "the unpacked tree matches the one pushed: $("$work/rootfs/bin/hello")"
say "done; stopping the registry and removing $work"
