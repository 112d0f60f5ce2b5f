#!/usr/bin/env bash
# Builds `domicile` with profile-guided optimisation (PGO).
#
# 1. builds an instrumented release binary (rustc -Cprofile-generate);
# 2. runs it as the embedded demo and sends it training traffic: plain GETs, the labelled
#    inspection corpus (JSON, form and multipart bodies in fourteen locales, with and without
#    personal data, with every evasion; written by `cargo run --example write_corpus` from a
#    seed no test or benchmark uses), larger JSON documents and text from bench/pgo_bodies.py,
#    blocked transfers, HTTP/1.1 and HTTP/2;
# 3. merges the counts with the toolchain's own llvm-profdata;
# 4. builds the release binary again with them (rustc -Cprofile-use).
#
# The compiler then lays out and inlines code by how often each branch was taken. The result is
# target/pgo/domicile, and the merged profile target/pgo/merged.profdata, with which any build
# of the workspace (the benchmarks too) can be made the same way:
#
#     RUSTFLAGS="-Cprofile-use=$PWD/target/pgo/merged.profdata" cargo bench ...
#
# Usage: bench/pgo.sh [--seconds S]     (bench/pgo.sh --help)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT="$ROOT/target/pgo"
HOST=127.0.0.1
PORT=18096          # the instrumented gateway
PORT_ADMIN=18097    # its admin listener
SECONDS_EACH=2
XFF_DE=192.0.2.10   # builtin:demo GeoIP: 192.0.2.0/24 -> DE
XFF_US=198.51.100.7 # 198.51.100.0/24 -> US

usage() {
    cat <<EOF
Usage: bench/pgo.sh [options]

Builds target/pgo/domicile with profile-guided optimisation, trained on the embedded demo.

Options:
  --seconds S   seconds of load per training step (default $SECONDS_EACH)
  -h, --help    this text

Needs: cargo, the toolchain's llvm-profdata (rustup component add llvm-tools), wrk, curl and
python3; h2load (Debian: nghttp2-client) is used for HTTP/2 when installed.
Uses 127.0.0.1 ports $PORT and $PORT_ADMIN.
EOF
}

log() { printf '[pgo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) SECONDS_EACH=${2:?}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
[[ $SECONDS_EACH =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a positive integer"

for t in cargo rustc wrk curl python3; do
    command -v "$t" >/dev/null 2>&1 || die "needs $t (see --help)"
done
HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA="$(rustc --print sysroot)/lib/rustlib/$HOST_TRIPLE/bin/llvm-profdata"
[[ -x $PROFDATA ]] || die "needs the toolchain's llvm-profdata at $PROFDATA: rustup component add llvm-tools"

rm -rf "$OUT/raw" "$OUT/bodies" "$OUT/corpus" "$OUT/scratch" "$OUT/tmp"
mkdir -p "$OUT/raw" "$OUT/bodies"

log "1/4 instrumented build (target/pgo/gen)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$OUT/raw" \
    cargo build --release --locked -p domicile-gateway --bin domicile --example write_corpus \
    --target-dir "$OUT/gen"
# Build scripts and proc-macros the build ran were instrumented too: their counts are not the
# gateway's.
rm -f "$OUT/raw"/*.profraw

log "2/4 training on the demo at $HOST:$PORT"
python3 "$BENCH_DIR/pgo_bodies.py" "$OUT/bodies" >"$OUT/bodies.tsv"
# The corpus writer is instrumented too: its counts go to a scratch file, not the profile.
LLVM_PROFILE_FILE="$OUT/scratch/%p.profraw" "$OUT/gen/release/examples/write_corpus" \
    "$OUT/corpus" 3341 6 >/dev/null || die "write_corpus failed"
# The demo keeps its decision records under the temporary directory: a fresh one each run.
rm -rf "$OUT/tmp" && mkdir -p "$OUT/tmp"
TMPDIR="$OUT/tmp" "$OUT/gen/release/domicile" serve --demo --listen "$HOST:$PORT" \
    --admin-listen "$HOST:$PORT_ADMIN" >"$OUT/gateway.log" 2>&1 &
GW=$!
trap 'kill "$GW" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -s -o /dev/null "http://$HOST:$PORT_ADMIN/readyz" && break
    kill -0 "$GW" 2>/dev/null || die "the gateway exited: $(tail -5 "$OUT/gateway.log")"
    sleep 0.1
done
curl -s -o /dev/null "http://$HOST:$PORT_ADMIN/readyz" || die "the gateway did not become ready"

# One training step: wrk with the benchmark's request script (METHOD BODY XFF [TYPE]).
load() { # path method body xff [content-type]
    local out
    out=$(wrk -t1 -c4 -d"${SECONDS_EACH}s" -s "$BENCH_DIR/wrk/request.lua" \
        "http://$HOST:$PORT$1" -- "$2" "$3" "$4" "${5:-}" 2>&1) || die "wrk failed on $2 $1: $out"
    log "  $2 $1 ${3##*/}: $(grep -o 'requests=[0-9]*' <<<"$out") $(grep -o 'status=[0-9]*' <<<"$out")"
}
load /catalog GET - "$XFF_DE"
load "/catalog/items?page=2&sort=price" GET - "$XFF_US"
load /customers/c-1042 GET - "$XFF_DE"
while IFS=$'\t' read -r name ctype; do
    load /customers POST "$OUT/bodies/$name" "$XFF_DE" "$ctype"
done <"$OUT/bodies.tsv"
load /customers POST "$OUT/bodies/signups.json" "$XFF_US" application/json
for xff in "$XFF_DE" "$XFF_US"; do
    out=$(wrk -t1 -c4 -d"${SECONDS_EACH}s" -s "$BENCH_DIR/wrk/bodies.lua" \
        "http://$HOST:$PORT/customers" -- "$OUT/corpus" "$xff" 2>&1) || die "wrk failed on the corpus: $out"
    log "  POST /customers corpus from $xff: $(awk '/requests in/ {print $1}' <<<"$out") requests"
done
load /analytics POST "$OUT/bodies/signup.json" "$XFF_DE" application/json
load /analytics POST "$OUT/bodies/listing-small.json" "$XFF_DE" application/json
# HTTP/2 (h2c with prior knowledge), and a query string with personal data: with h2load when
# it is installed, else one curl a request (curl 7.88 cannot reuse an h2c connection).
H2_URLS=("http://$HOST:$PORT/catalog" "http://$HOST:$PORT/customers?email=jan.novak@example.org")
if command -v h2load >/dev/null 2>&1; then
    for url in "${H2_URLS[@]}"; do
        h2load -n 4000 -c 4 -m 4 -H "X-Forwarded-For: $XFF_DE" "$url" >"$OUT/h2load.log" 2>&1 \
            || die "h2load failed on $url: $(tail -3 "$OUT/h2load.log")"
        log "  GET (HTTP/2) ${url#http://$HOST:$PORT}: $(grep -o '[0-9]* succeeded' "$OUT/h2load.log")"
    done
else
    for _ in $(seq 50); do
        for url in "${H2_URLS[@]}"; do
            curl -s --http2-prior-knowledge -H "X-Forwarded-For: $XFF_DE" -o /dev/null "$url" \
                || die "HTTP/2 training request to $url failed"
        done
    done
    log "  GET (HTTP/2): 100 requests with curl"
fi

kill -TERM "$GW"
wait "$GW" || true
trap - EXIT
rm -rf "$OUT/tmp" "$OUT/scratch"
ls "$OUT/raw"/*.profraw >/dev/null 2>&1 || die "the gateway wrote no profile (see $OUT/gateway.log)"

log "3/4 merging the profile"
"$PROFDATA" merge -o "$OUT/merged.profdata" "$OUT/raw"

log "4/4 optimised build (target/pgo/use)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$OUT/merged.profdata" \
    cargo build --release --locked -p domicile-gateway --bin domicile --target-dir "$OUT/use"
cp "$OUT/use/release/domicile" "$OUT/domicile"
log "built $OUT/domicile (profile: $OUT/merged.profdata)"
