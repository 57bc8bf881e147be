# Sourced by the bench scripts (from the repository root): the quiver
# binary, a scratch directory removed on exit together with any broker still
# running, and fresh brokers started the way a newcomer starts one.

QUIVER=$(realpath "${QUIVER:-target/release/quiver}")
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts `quiver serve` with its defaults from an empty directory, QUIC on
# 127.0.0.1:$1 and the Kafka listener on $2 (an address, or off); waits for
# it to listen and points the CLI at it (QUIVER_BROKER, QUIVER_CA).
fresh_broker() {
    rm -rf "$work/b" && mkdir -p "$work/b"
    (cd "$work/b" && exec "$QUIVER" serve --listen "127.0.0.1:$1" --http off \
        --kafka-listen "$2" 2>"$work/b.log") &
    pid=$!
    until grep -q "listen=" "$work/b.log" 2>/dev/null; do sleep 0.05; done
    export QUIVER_BROKER=127.0.0.1:$1 QUIVER_CA=$work/b/quiver-data/tls/cert.pem
}

# Stops the broker fresh_broker started.
stop_broker() {
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
}

# Reads a bench's --json summary on standard input; prints it as one line
# labelled $1: records/s, CPU per record of client and broker, request p99.
summary() {
    python3 -c '
import json, sys
d = json.loads(sys.stdin.readline())
rate = d["records_per_sec"] / 1e6
client, broker = d["client_cpu_us_per_record"], d["broker_cpu_us_per_record"]
p99 = d["p99_ms"]
print(f"{sys.argv[1]}: {rate:.3f} M records/s, client {client:.3f} us/record, "
      f"broker {broker:.3f} us/record, request p99 {p99} ms")
' "$1"
}
