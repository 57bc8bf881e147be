#!/usr/bin/env bash
# The ratio table of BENCHMARKS.md, in one run on this machine: Quiver's
# figures beside references measured in the same window (the disk with
# dd conv=fdatasync, and Apache Iggy's QUIC benchmark when an Iggy build is
# present), each reported as a ratio, since absolute figures move between
# machines. Every Quiver run starts a fresh `quiver serve` with its
# defaults (fsync on) in a new temporary directory; client and broker CPU
# are reported per record.
#
#   cargo build --release
#   cargo build --manifest-path guest-examples/Cargo.toml --release --target wasm32-wasip2
#   bench/compare.sh                         # Quiver and the disk only
#   IGGY_DIR=/path/to/iggy bench/compare.sh  # with Iggy (its target/release
#                                            # holds iggy-server and iggy-bench)
#
# Iggy is not fetched or built by this script. Measured with commit cc269ef,
# built with this machine's Rust 1.95 (its toolchain file asks for a newer
# one; its rust-version is 1.95) after `apt-get install libhwloc-dev
# libudev-dev pkg-config`:
#   RUSTUP_TOOLCHAIN=1.95.0 cargo build --release -p server --bin iggy-server
#   RUSTUP_TOOLCHAIN=1.95.0 cargo build --release -p iggy-bench --bin iggy-bench
#
# RECORDS (default 5,000,000) sets the 100 B runs; ROUNDS (default 2) how
# many times each is repeated (the table shows the range).
set -euo pipefail
cd "$(dirname "$0")/.."

GUESTS=${GUESTS:-guest-examples/target/wasm32-wasip2/release}
RECORDS=${RECORDS:-5000000}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-7710}
IGGY_DIR=${IGGY_DIR:-}
. bench/lib.sh
export QUIVER_BROKER=127.0.0.1:$PORT

# A fresh broker with its defaults, from an empty directory.
start_quiver() {
    rm -rf "$work/q" && mkdir -p "$work/q"
    (cd "$work/q" && exec "$QUIVER" serve --listen "127.0.0.1:$PORT" --http off \
        2>"$work/serve.log") &
    pid=$!
    export QUIVER_CA=$work/q/quiver-data/tls/cert.pem
    until grep -q "listen=" "$work/serve.log" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { tail -5 "$work/serve.log"; exit 1; }
        sleep 0.05
    done
}
stop_quiver() {
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

# Runs `quiver bench ARGS --json` on a fresh broker; prints its JSON line.
bench() {
    start_quiver
    "$QUIVER" bench "$@" --broker-pid "$pid" --json | tail -1
    stop_quiver
}

# field NAME: reads a JSON object from stdin, prints .NAME.
field() { python3 -c "import json,sys; v=json.load(sys.stdin).get('$1'); print('' if v is None else v)"; }

results=$work/results
: >"$results"
# row LABEL VALUE...: collects a measurement.
row() { echo "$*" >>"$results"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(df -h "$work" | awk 'NR==2 {print $1}')"

for round in $(seq "$ROUNDS"); do
    echo "## round $round"
    dd_out=$(dd if=/dev/zero of="$work/dd.tmp" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)
    rm -f "$work/dd.tmp"
    dd_mb=$(echo "$dd_out" | python3 -c "
import re,sys
m = re.search(r'([0-9.]+) ([MG])B/s', sys.stdin.read())
print(float(m.group(1)) * (1000 if m.group(2) == 'G' else 1))")
    echo "dd bs=1M count=1024 conv=fdatasync: $dd_mb MB/s"
    row dd "$dd_mb"

    for spec in "p4:--records $RECORDS --producers 4" "p1:--records $RECORDS --producers 1" \
        "k4:--records $((RECORDS / 5)) --record-size 1024 --producers 4"; do
        name=${spec%%:*}
        # shellcheck disable=SC2086
        json=$(bench produce ${spec#*:} --partitions 4 --batch-size 1000)
        echo "produce $name: $json"
        row "$name" "$(field records_per_sec <<<"$json")" "$(field mb_per_sec <<<"$json")" \
            "$(field p99_ms <<<"$json")" "$(field client_cpu_us_per_record <<<"$json")" \
            "$(field broker_cpu_us_per_record <<<"$json")"
    done

    # One consumer, and four (as produce has four producers).
    for consumers in 1 4; do
        json=$(bench consume --records "$RECORDS" --partitions 4 --consumers "$consumers")
        echo "consume x$consumers: $json"
        row "consume$consumers" "$(field records_per_sec <<<"$json")" "" "" \
            "$(field client_cpu_us_per_record <<<"$json")" \
            "$(field broker_cpu_us_per_record <<<"$json")"
    done

    for t in "filter:filter.wasm --param field=action --param equals=click" \
        "click-aggregate:click_aggregate.wasm --param window_ms=60000"; do
        name=${t%%:*}
        start_quiver
        # shellcheck disable=SC2086
        json=$("$QUIVER" bench transform --records 2000000 --json --broker-pid "$pid" \
            --module-file "$GUESTS"/${t#*:} | tail -1)
        stop_quiver
        echo "transform $name: $json"
        row "$name" "$(field records_per_sec <<<"$json")" "" "" "" \
            "$(field broker_cpu_us_per_record <<<"$json")"
    done

    if [ -n "$IGGY_DIR" ]; then
        # Iggy with its defaults (QUIC, no fsync: its topics fsync only when
        # created with enforce_fsync) from an empty directory; the command of
        # issue 10. Its server pins its two shards to the two cores.
        mkdir -p "$work/iggy"
        (cd "$work/iggy" && exec "$IGGY_DIR/target/release/iggy-server" \
            --with-default-root-credentials >"$work/iggy.log" 2>&1) &
        pid=$!
        until grep -q "server client listeners started" "$work/iggy.log" 2>/dev/null; do
            kill -0 "$pid" 2>/dev/null || { tail -5 "$work/iggy.log"; exit 1; }
            sleep 0.05
        done
        server_before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        /usr/bin/time -f "%U %S" -o "$work/iggy-bench.cpu" \
            "$IGGY_DIR/target/release/iggy-bench" -m 100 -P 1000 balanced-producer -a 4 -p 4 quic \
            2>&1 | sed 's/\x1b\[[0-9;]*m//g' >"$work/iggy-bench.log"
        server_after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
        rm -rf "$work/iggy"
        grep "Producers Results" "$work/iggy-bench.log"
        # messages/s, MB/s, p99 ms, bench CPU us/msg, server CPU us/msg.
        # shellcheck disable=SC2046
        row iggy $(python3 - "$work/iggy-bench.log" "$work/iggy-bench.cpu" \
            "$((server_after - server_before))" "$(getconf CLK_TCK)" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rate = float(re.search(r"Total throughput: [0-9.]+ MB/s, ([0-9]+) messages/s", text).group(1))
p99 = re.search(r"p99 latency: ([0-9.]+) ms", text).group(1)
count = int(re.search(r"([0-9]+) messages, ", text).group(1))
user, system = map(float, open(sys.argv[2]).read().split()[-2:])
server = int(sys.argv[3]) / int(sys.argv[4])
print(rate, rate * 100 / 1e6, p99, (user + system) * 1e6 / count, server * 1e6 / count)
EOF
)
    fi
done

python3 - "$results" <<'EOF'
import sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    name, *values = line.split(" ")
    rows[name].append([float(v) if v.strip() else None for v in values])

def rng(name, i, scale=1.0, fmt="{:.2f}"):
    vals = [r[i] * scale for r in rows.get(name, []) if len(r) > i and r[i] is not None]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"

def ratio(a, ai, b, bi, scale=1.0):
    pairs = [(x[ai], y[bi]) for x, y in zip(rows.get(a, []), rows.get(b, []))
             if x[ai] and y[bi]]
    if not pairs:
        return "-"
    vals = [x / y * scale for x, y in pairs]
    return f"{min(vals):.2f}-{max(vals):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"

print()
print("| workload | Quiver | reference | ratio | client CPU us/rec | broker CPU us/rec | p99 ms |")
print("|---|---|---|---|---|---|---|")
print(f"| produce 100 B, 4 producers | {rng('p4', 0, 1e-6)} M rec/s | Iggy {rng('iggy', 0, 1e-6)} M msg/s | {ratio('p4', 0, 'iggy', 0)} of Iggy | {rng('p4', 3)} | {rng('p4', 4)} | {rng('p4', 2)} |")
print(f"| Iggy, issue 10's command (QUIC, no fsync) | | {rng('iggy', 0, 1e-6)} M msg/s | | {rng('iggy', 3)} | {rng('iggy', 4)} | {rng('iggy', 2)} |")
print(f"| produce 100 B, 1 producer | {rng('p1', 0, 1e-6)} M rec/s | | | {rng('p1', 3)} | {rng('p1', 4)} | {rng('p1', 2)} |")
print(f"| produce 1 KiB, 4 producers | {rng('k4', 1, fmt='{:.0f}')} MB/s | dd {rng('dd', 0, fmt='{:.0f}')} MB/s | {ratio('k4', 1, 'dd', 0)} of dd | {rng('k4', 3)} | {rng('k4', 4)} | {rng('k4', 2)} |")
for n in (1, 4):
    name = f"consume{n}"
    print(f"| consume 100 B, {n} consumer{'s' if n > 1 else ''} | {rng(name, 0, 1e-6)} M rec/s | produce, 4 producers | {ratio(name, 0, 'p4', 0)} of produce | {rng(name, 3)} | {rng(name, 4)} | |")
print(f"| transform filter | {rng('filter', 0, 1e-6)} M rec/s | | | | {rng('filter', 4)} | |")
print(f"| transform click-aggregate | {rng('click-aggregate', 0, 1e-6)} M ev/s | | | | {rng('click-aggregate', 4)} | |")
EOF
