#!/bin/sh
# Run every target for $1 seconds (default 600), one after another.
set -e
cd "$(dirname "$0")"
secs=${1:-600}
for t in challenge reference manifest layer; do
    mkdir -p corpus/$t
    RUSTC_BOOTSTRAP=1 nice cargo fuzz run $t corpus/$t seeds/$t -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 \
        > "/tmp/fuzz-$t.log" 2>&1 || echo "$t: FAILED"
    echo "$t: done"
done
