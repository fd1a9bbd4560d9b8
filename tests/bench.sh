#!/bin/bash
# make bench: ferry against curl, skopeo and umoci, in one run, on this
# machine. Not a test: nothing here is run by `make check` or CI, and
# nothing fails when a target is missed; the figures are printed for the
# README's Performance section.
#
# What it does: builds ferry in release mode, starts Debian's
# docker-registry on 127.0.0.1 with a self-signed TLS certificate (no
# auth), pushes a 1 GiB and a 4 GiB image of 4 random layers into it with
# skopeo, then times pulls (ferry, curl, skopeo), and pushes and unpacks
# when this ferry has those commands.
#
# Environment:
#   BENCH_DIR     where the scratch directory goes (default /var/tmp); it
#                 needs about 18 GiB free and is removed on exit
#   BENCH_ROUNDS  timed rounds per tool, the median is reported (default 5)
#   BENCH_KEEP=1  keep the scratch directory (for looking at logs)
#   BENCH_4G=0    skip the 4 GiB pull (it takes a few minutes)
#   BENCH_ONLY    which parts to run, of "pull push unpack" (the default);
#                 push pushes what the pull rounds fetched, so needs pull
#   FERRY=PATH    time this ferry binary instead of building one (another
#                 branch's, say); the commit printed is then "FERRY=PATH"
#   BENCH_SMALL=1 images of 64 MiB and 256 MiB instead: a quick try of the
#                 script itself, not figures to record

set -euo pipefail

rounds=${BENCH_ROUNDS:-5}
if [ "${BENCH_SMALL:-0}" = 1 ]; then scale=16; else scale=1; fi
small_mib=$((256 / scale)) large_mib=$((1024 / scale))
repo_root=$(cd "$(dirname "$0")/.." && pwd)
ferry=${FERRY:-$repo_root/target/release/ferry}

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------

need() { # COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 ||
        die "$1 not found: install the Debian package '$2' (apt-get install $2)"
}
need curl curl
need skopeo skopeo
need umoci umoci
need docker-registry docker-registry
need openssl openssl
need /usr/bin/time time
need sha256sum coreutils
need tar tar
need gzip gzip
# The layer generator writes gzip with stored blocks (level 0): valid gzip
# that costs nothing to make, so skopeo keeps it as it is instead of
# compressing random data on the way up.
perl -MCompress::Zlib -MDigest::SHA -e1 2>/dev/null ||
    die "perl with Compress::Zlib not found: install the Debian package 'perl'"

# --- scratch space, and cleanup whatever happens ---------------------------

mkdir -p "${BENCH_DIR:-/var/tmp}"
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/ferry-bench.XXXXXX")
registry_pids=()
cleanup() {
    local pid
    for pid in "${registry_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "bench: kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say "bench: scratch directory $work"

# --- build -----------------------------------------------------------------

if [ -n "${FERRY:-}" ]; then
    [ -x "$ferry" ] || die "FERRY=$ferry is not an executable"
    commit="FERRY=$ferry"
else
    (cd "$repo_root" && cargo build --release --locked --quiet)
    commit=$(cd "$repo_root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
fi
has_command() { "$ferry" "$1" --help >/dev/null 2>&1; }
only=" ${BENCH_ONLY:-pull push unpack} "
# part NAME: whether to run part NAME: asked for, and ferry has the command.
part() {
    [[ $only == *" $1 "* ]] || return 1
    case $1 in
    push) part pull && has_command push ;;
    *) has_command "$1" ;;
    esac
}

# --- certificate and registries --------------------------------------------

# An `openssl req -x509` certificate, CA:TRUE, the way internal registries
# make theirs; skopeo wants it as ca.crt in a directory.
cert=$work/cert.pem
certdir=$work/certdir
mkdir -p "$certdir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ferry bench" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$work/key.pem" -out "$cert" 2>/dev/null
cp "$cert" "$certdir/ca.crt"

# start_registry NAME: starts a registry with storage under $work/NAME and
# sets $port. A busy port makes it exit at once, so it tries a few.
start_registry() {
    local name=$1 dir=$work/$1 try pid
    mkdir -p "$dir"
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 20000))
        cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: ferry-bench
  tls:
    certificate: $cert
    key: $work/key.pem
EOF
        docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
        pid=$!
        for _ in $(seq 50); do
            if curl -sf --cacert "$cert" "https://127.0.0.1:$port/v2/" >/dev/null; then
                registry_pids+=("$pid")
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    cat "$dir/log" >&2
    die "docker-registry did not start"
}
if part pull; then
    start_registry registry
    reg=127.0.0.1:$port
fi

# --- images ----------------------------------------------------------------

# gzip0 BYTES FILE: writes BYTES of random data as a level-0 gzip stream to
# FILE and prints the SHA-256 of the uncompressed bytes (the diff_id).
gzip0() {
    perl -MCompress::Zlib -MDigest::SHA -e '
        my ($left, $out) = @ARGV;
        open(my $rand, "<", "/dev/urandom") or die "urandom: $!";
        my $gz = gzopen($out, "wb0") or die "gzopen $out: $gzerrno";
        my $sha = Digest::SHA->new(256);
        while ($left > 0) {
            my $n = $left < 1048576 ? $left : 1048576;
            read($rand, my $buf, $n) == $n or die "short read";
            $sha->add($buf);
            $gz->gzwrite($buf) == $n or die "gzwrite: $gzerrno";
            $left -= $n;
        }
        $gz->gzclose() == 0 or die "gzclose";
        print $sha->hexdigest, "\n";' "$1" "$2"
}

# add_blob LAYOUT FILE: moves FILE to its content address, prints
# "DIGEST SIZE".
add_blob() {
    local hex size
    hex=$(sha256sum "$2" | cut -d' ' -f1)
    size=$(stat -c %s "$2")
    mkdir -p "$1/blobs/sha256"
    mv "$2" "$1/blobs/sha256/$hex"
    say "sha256:$hex $size"
}

# finish_layout LAYOUT "DIFF_ID..." "LAYER_DESCRIPTOR_JSON...": writes the
# config, the manifest and index.json (image named "bench").
finish_layout() {
    local layout=$1 diff_ids=$2 layers=$3 arch d s
    arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
    printf '{"architecture":"%s","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
        "$arch" "$diff_ids" >"$layout/tmp.config"
    read -r d s < <(add_blob "$layout" "$layout/tmp.config")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
        "$d" "$s" "$layers" >"$layout/tmp.manifest"
    read -r d s < <(add_blob "$layout" "$layout/tmp.manifest")
    printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
        "$d" "$s" >"$layout/index.json"
}

# random_layout LAYOUT LAYER-MIB: an image of 4 layers of random bytes.
random_layout() {
    local layout=$1 bytes=$(($2 * 1048576)) i diff d s diff_ids="" layers=""
    mkdir -p "$layout"
    for i in 1 2 3 4; do
        diff=$(gzip0 "$bytes" "$layout/tmp.layer")
        read -r d s < <(add_blob "$layout" "$layout/tmp.layer")
        diff_ids+="${diff_ids:+,}\"sha256:$diff\""
        layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$d\",\"size\":$s}"
    done
    finish_layout "$layout" "$diff_ids" "$layers"
}

# make_image NAME LAYER-MIB: builds the layout, pushes it as $reg/bench/NAME,
# and removes the layout to save space.
make_image() {
    say "bench: making $1 (4 layers of $2 MiB) and pushing it with skopeo"
    random_layout "$work/src-$1" "$2"
    skopeo copy -q --dest-cert-dir "$certdir" "oci:$work/src-$1:bench" \
        "docker://$reg/bench/$1:latest" >/dev/null
    rm -rf "$work/src-$1"
}

# --- measuring -------------------------------------------------------------

results=$work/results
: >"$results"

# warm MIB: touches that much memory and frees it, right before a timed
# run. A VM that hands free memory back to its host (virtio-balloon free
# page reporting, as on the machine of the README's figures) makes the
# first write to each such page fault in the host: system time, up to 2 s
# per GiB, charged to whichever tool happens to get those pages, so the
# same command varied by 2x from run to run. Freshly freed pages are not
# handed back for a few seconds, and every tool gets the same warm-up.
warm_mib=0
warm() {
    [ "$1" -gt 0 ] || return 0
    perl -e '$x = "\1" x ($ARGV[0] * 1048576)' "$1"
}

# measure LABEL COMMAND...: runs COMMAND under GNU time and records
# "LABEL wall user sys max-rss-KiB".
measure() {
    local label=$1
    shift
    warm "$warm_mib"
    if ! /usr/bin/time -f '%e %U %S %M' -o "$work/time.out" "$@" >"$work/cmd.out" 2>&1; then
        cat "$work/cmd.out" >&2
        die "$label failed: $*"
    fi
    say "$label $(tail -n 1 "$work/time.out")" >>"$results"
}

# median LABEL FIELD: the median of a field over the rounds (wall, cpu =
# user + sys, or rss in MiB).
median() {
    awk -v label="$1" -v field="$2" '
        $1 == label {
            v = field == "wall" ? $2 : field == "cpu" ? $3 + $4 : $5 / 1024
            vals[n++] = v
        }
        END {
            if (n == 0) { print "nan"; exit }
            # insertion sort: a handful of values
            for (i = 1; i < n; i++)
                for (j = i; j > 0 && vals[j - 1] > vals[j]; j--) {
                    t = vals[j]; vals[j] = vals[j - 1]; vals[j - 1] = t
                }
            printf "%.2f\n", n % 2 ? vals[(n - 1) / 2] : (vals[n / 2 - 1] + vals[n / 2]) / 2
        }' "$results"
}

row() { # LABEL: wall, cpu and rss medians of LABEL
    printf '  %-26s wall %7s s  cpu %7s s  peak RSS %7s MiB\n' "$1" "$(median "$1" wall)" \
        "$(median "$1" cpu)" "$(median "$1" rss)"
}

# verdict NAME VALUE TARGET: one line, "met" when VALUE <= TARGET.
verdict() {
    awk -v name="$1" -v v="$2" -v t="$3" -v unit="${4:-x}" 'BEGIN {
        printf "  %-30s %6.2f%s  target <= %s%s  %s\n", name, v, unit, t, unit,
            (v <= t ? "met" : "MISSED")
    }'
}
# floor SIZE: how much of curl's wall time hashing alone takes, and
# ferry's wall time without it against curl's: the part of the ratio that
# is ferry's own transfer path.
floor() {
    local sha ferry_wall curl_wall
    sha=$(median "sha256-$1" cpu) ferry_wall=$(median "ferry-$1" wall)
    curl_wall=$(median "curl-$1" wall)
    no_target "sha256 alone / curl wall" "$(ratio "$sha" "$curl_wall")"
    no_target "(ferry - sha256) / curl wall" \
        "$(ratio "$(awk -v a="$ferry_wall" -v b="$sha" 'BEGIN { print a - b }')" "$curl_wall")"
}
# no_target NAME VALUE: a ratio printed for understanding, not judged.
no_target() { printf '  %-30s %6.2fx  (no target)\n' "$1" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b > 0 ? a / b : 0) }'; }

# layer_args NAME: curl's arguments fetching $reg/bench/NAME's layers (from
# the manifest; the config is not a layer), one per line.
layer_args() {
    local d
    for d in $("$ferry" --ca-cert "$cert" inspect "$reg/bench/$1:latest" |
        awk '$1 == "layer" { print $2 }'); do
        printf -- '-o\n%s\n%s\n' "$work/out/curl/${d#sha256:}" "https://$reg/v2/bench/$1/blobs/$d"
    done
}

# pull_round NAME SUFFIX: one timed pull each with curl, ferry and skopeo.
pull_round() {
    local name=$1 label=$2 args
    mapfile -t args < <(layer_args "$name")
    rm -rf "$work/out"
    mkdir -p "$work/out/curl"
    # HTTP/1.1 as ferry speaks it: the ratio compares clients, not protocols.
    measure "curl-$label" curl -sS --fail --http1.1 --cacert "$cert" "${args[@]}"
    # Hashing alone, of the bytes curl just wrote (still in the page cache):
    # what any client that verifies digests on one core pays on top of
    # receiving and writing. It bounds the wall ratio from below.
    measure "sha256-$label" bash -c 'cd "$0" && openssl dgst -sha256 -- * >/dev/null' \
        "$work/out/curl"
    rm -rf "$work/out"
    # The same work ferry does beyond fetching: hash every byte and make
    # the files durable. Not a target, it explains the curl ratio. openssl,
    # not sha256sum: it uses the CPU's SHA instructions as ferry does, where
    # Debian's sha256sum is several times slower.
    mkdir -p "$work/out/curl"
    measure "curl+verify-$label" bash -c 'dir=$1; shift
        curl -sS --fail --http1.1 --cacert "$0" "$@" &&
            cd "$dir" && openssl dgst -sha256 -- * >/dev/null && sync -- *' \
        "$cert" "$work/out/curl" "${args[@]}"
    rm -rf "$work/out"
    measure "ferry-$label" "$ferry" -q --ca-cert "$cert" pull "$reg/bench/$name:latest" \
        "$work/out/ferry"
    if [ "${3:-}" = keep ]; then
        rm -rf "$work/pulled"
        mv "$work/out/ferry" "$work/pulled"
    fi
    rm -rf "$work/out"
    if [ "${4:-}" != no-skopeo ]; then
        mkdir -p "$work/out"
        measure "skopeo-$label" skopeo copy -q --src-cert-dir "$certdir" \
            "docker://$reg/bench/$name:latest" "oci:$work/out/skopeo:bench"
        rm -rf "$work/out"
    fi
}

# --- run -------------------------------------------------------------------

if part pull; then
    make_image 1g "$small_mib"
    warm_mib=$((small_mib * 4 + 512))
    # One untimed fetch so every tool reads the registry's files from the
    # page cache, not the first one alone.
    pull_round 1g warm
    : >"$results"
    for r in $(seq "$rounds"); do
        say "bench: pull round $r of $rounds"
        pull_round 1g 1g keep
    done
fi

if part pull && [ "${BENCH_4G:-1}" != 0 ]; then
    make_image 4g "$large_mib"
    warm_mib=$((large_mib * 4 + 512))
    say "bench: pull 4 GiB"
    pull_round 4g 4g "" no-skopeo
fi

if part push; then
    # A second registry whose storage is emptied before every push, so each
    # push uploads every blob (no blob already there, nothing to mount).
    start_registry push-registry
    push_reg=127.0.0.1:$port
    warm_mib=$((small_mib * 4 + 512))
    pulled_ref=$reg/bench/1g:latest
    for r in $(seq "$rounds"); do
        say "bench: push round $r of $rounds"
        rm -rf "$work/push-registry/storage"
        measure ferry-push "$ferry" -q --ca-cert "$cert" push "$work/pulled" \
            "$push_reg/bench/push:latest"
        rm -rf "$work/push-registry/storage"
        measure skopeo-push skopeo copy -q --dest-cert-dir "$certdir" \
            "oci:$work/pulled:$pulled_ref" "docker://$push_reg/bench/push:latest"
    done
fi

if part unpack; then
    say "bench: making 4 tar+gzip layers of 256 MiB of files"
    # Files of text-like content (base64 of random bytes, gzip takes it to
    # about 3/4) in three sizes: many small ones, as real images have.
    # text MIB: that much base64 of random bytes (base64 stops on SIGPIPE,
    # which pipefail would take for a failure).
    text() { { base64 -w 76 /dev/urandom || true; } | head -c $(($1 * 1048576 / scale)); }
    layout=$work/unpack-src
    mkdir -p "$layout"
    diff_ids="" layers="" tar_bytes=0 gzip_bytes=0
    for i in 1 2 3 4; do
        tree=$work/tree$i
        mkdir -p "$tree/l$i/big" "$tree/l$i/mid" "$tree/l$i/small"
        text 200 | split -b 1M -a 3 - "$tree/l$i/big/f"
        text 48 | split -b 16K -a 4 - "$tree/l$i/mid/f"
        text 8 | split -b 2K -a 4 - "$tree/l$i/small/f"
        tar -C "$tree" -cf "$work/layer.tar" "l$i"
        diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
        tar_bytes=$((tar_bytes + $(stat -c %s "$work/layer.tar")))
        gzip -n -1 <"$work/layer.tar" >"$layout/tmp.layer"
        rm "$work/layer.tar"
        rm -rf "$tree"
        read -r d s < <(add_blob "$layout" "$layout/tmp.layer")
        gzip_bytes=$((gzip_bytes + s))
        diff_ids+="${diff_ids:+,}\"sha256:$diff\""
        layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$d\",\"size\":$s}"
    done
    finish_layout "$layout" "$diff_ids" "$layers"
    gzip_mib=$(awk -v b="$gzip_bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
    tar_mib=$(awk -v b="$tar_bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
    warm_mib=$((tar_mib + 512))
    # Every round unpacks into new directories, and the trees are removed
    # only after the last one: ext4 skips inodes freed in the last half
    # minute or so when it allocates new ones, and right after removing a
    # tree of 29,000 files, making the next tree took twice as long
    # (system time 6-7 s instead of under 1 s, in the inode allocator).
    mkdir -p "$work/trees"
    for r in $(seq "$rounds"); do
        say "bench: unpack round $r of $rounds"
        measure umoci-unpack umoci unpack --rootless --image "$layout:bench" \
            "$work/trees/bundle-$r"
        measure ferry-unpack "$ferry" -q unpack "$layout" "$work/trees/rootfs-$r"
    done
    rm -rf "$work/trees"
fi

# --- report ----------------------------------------------------------------

say ""
say "ferry $commit, $(date -u +%Y-%m-%d), $(nproc) CPUs," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'),"
say "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg); medians of $rounds rounds"
say ""
if part pull; then
    say "pull, 1 GiB image of 4 layers:"
    row curl-1g
    row curl+verify-1g
    row sha256-1g
    row ferry-1g
    row skopeo-1g
    verdict "ferry wall / curl wall" \
        "$(ratio "$(median ferry-1g wall)" "$(median curl-1g wall)")" 0.9
    verdict "ferry cpu / skopeo cpu" \
        "$(ratio "$(median ferry-1g cpu)" "$(median skopeo-1g cpu)")" 0.5
    verdict "ferry peak RSS" "$(median ferry-1g rss)" 6 " MiB"
    no_target "ferry wall / curl+verify wall" \
        "$(ratio "$(median ferry-1g wall)" "$(median curl+verify-1g wall)")"
    floor "1g"
fi
if part pull && [ "${BENCH_4G:-1}" != 0 ]; then
    say "pull, 4 GiB image of 4 layers (one round):"
    row curl-4g
    row curl+verify-4g
    row sha256-4g
    row ferry-4g
    verdict "ferry wall / curl wall" "$(ratio "$(median ferry-4g wall)" "$(median curl-4g wall)")" 0.9
    verdict "ferry peak RSS" "$(median ferry-4g rss)" 6 " MiB"
    floor "4g"
fi
if part push; then
    say "push, the 1 GiB layout to an empty registry:"
    row ferry-push
    row skopeo-push
    verdict "ferry wall / skopeo wall" \
        "$(ratio "$(median ferry-push wall)" "$(median skopeo-push wall)")" 0.8
    no_target "ferry cpu / skopeo cpu" \
        "$(ratio "$(median ferry-push cpu)" "$(median skopeo-push cpu)")"
    verdict "ferry peak RSS" "$(median ferry-push rss)" 6 " MiB"
elif ! has_command push; then
    say "push: this ferry has no push command yet; skipped"
fi
if part unpack; then
    say "unpack, 4 layers, $tar_mib MiB of tar, $gzip_mib MiB of gzip:"
    row umoci-unpack
    row ferry-unpack
    verdict "ferry wall / umoci wall" \
        "$(ratio "$(median ferry-unpack wall)" "$(median umoci-unpack wall)")" 0.5
elif ! has_command unpack; then
    say "unpack: this ferry has no unpack command yet; skipped"
fi
