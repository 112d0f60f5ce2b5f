#!/usr/bin/env bash
# Domicile end-to-end benchmark against nginx and HAProxy on one machine (2 cores).
#
# Method (docs: shared reference performance.md §7–§9): the load generator is pinned to CPU 0,
# the backend and every proxy to CPU 1; targets are interleaved in blocks
# (direct, nginx, haproxy, domicile) × N; the figure of merit is the proxy's CPU µs per
# request from /proc/<pid>/stat, as a ratio to nginx measured in the same run.
#
# Usage: bench/run.sh [options]        (bench/run.sh --help)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

# Fixed loopback ports. Never anything but 127.0.0.1.
HOST=127.0.0.1
PORT_EU=18081        # backend, region "eu-central"
PORT_US=18082        # backend, region "us-east"
PORT_NGINX=18090     # nginx reverse proxy
PORT_HAPROXY=18091   # HAProxy
PORT_DOMICILE=18092  # Domicile
PORT_ADMIN=18093     # Domicile admin
ALL_PORTS=("$PORT_EU" "$PORT_US" "$PORT_NGINX" "$PORT_HAPROXY" "$PORT_DOMICILE" "$PORT_ADMIN")

CLIENT_CPU=0
SUT_CPU=1
XFF_DE=192.0.2.10    # builtin:demo GeoIP: 192.0.2.0/24 -> DE

BLOCKS=3
BLOCKS_GIVEN=0
CLEAN_BLOCKS=""      # --clean-blocks K: run blocks until K are clean (or --blocks, the cap, have run)
STEAL_LIMIT=5        # % CPU steal above which a block is not clean (summarize.py decides; for the help text)
DURATION=5
WARMUP=1
DURABILITY=none
BUILD=1
INSTALL=0
SCENARIOS="get,post1k,post64k,block"
OPEN_LOOP=auto
RATE=2000
KEEP_TRACES=0
DOMICILE_BIN=""
PGO=0

usage() {
    cat <<EOF
Usage: bench/run.sh [options]

Runs direct / nginx / haproxy / domicile through the scenarios, interleaved in blocks,
and writes bench/results/<timestamp>/{results.tsv,summary.md,...}.

Options:
  --blocks N           interleaved blocks per scenario (default $BLOCKS); with --clean-blocks,
                       the most blocks run per scenario (default 3 × K)
  --clean-blocks K     run blocks of each scenario until K of them are clean (every target's
                       CPU steal <= $STEAL_LIMIT % and no errors in the block) or --blocks have run
  --duration S         measured seconds per point (default $DURATION)
  --warmup S           warm-up seconds per point, not measured (default $WARMUP)
  --durability MODE    Domicile [trace] durability: none | batch | always (default $DURABILITY)
  --scenarios LIST     comma-separated subset of: get,post1k,post64k,block,get_open
                       (default $SCENARIOS, plus get_open when oha or h2load is installed)
  --rate RPS           request rate of the open-loop scenario (default $RATE)
  --no-open-loop       skip the open-loop scenario even when oha/h2load is installed
  --no-build           do not run cargo build (the release binary must exist)
  --domicile-bin PATH  use this domicile binary instead of target/release/domicile
  --pgo                use the profile-guided build, target/pgo/domicile (built first with
                       bench/pgo.sh unless --no-build)
  --keep-traces        keep Domicile's decision files in the run directory (they can be large)
  --install            install missing tools with apt-get (says so first)
  -h, --help           this text

Needs: nginx, haproxy, wrk, curl, python3, taskset, ss and at least 2 CPUs.
Optional: oha or h2load (Debian: nghttp2-client) for the open-loop latency scenario.
EOF
}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --blocks) BLOCKS=${2:?}; BLOCKS_GIVEN=1; shift 2 ;;
        --clean-blocks) CLEAN_BLOCKS=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --warmup) WARMUP=${2:?}; shift 2 ;;
        --durability) DURABILITY=${2:?}; shift 2 ;;
        --scenarios) SCENARIOS=${2:?}; OPEN_LOOP=explicit; shift 2 ;;
        --rate) RATE=${2:?}; shift 2 ;;
        --no-open-loop) OPEN_LOOP=no; shift ;;
        --no-build) BUILD=0; shift ;;
        --domicile-bin) DOMICILE_BIN=${2:?}; shift 2 ;;
        --pgo) PGO=1; shift ;;
        --keep-traces) KEEP_TRACES=1; shift ;;
        --install) INSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

[[ $BLOCKS =~ ^[1-9][0-9]*$ ]] || die "--blocks must be a positive integer"
if [[ -n $CLEAN_BLOCKS ]]; then
    [[ $CLEAN_BLOCKS =~ ^[1-9][0-9]*$ ]] || die "--clean-blocks must be a positive integer"
    if [[ $BLOCKS_GIVEN == 0 ]]; then BLOCKS=$((3 * CLEAN_BLOCKS)); fi
    [[ $CLEAN_BLOCKS -le $BLOCKS ]] || die "--clean-blocks ($CLEAN_BLOCKS) is more than --blocks ($BLOCKS), the most blocks run"
fi
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive integer (seconds)"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "--warmup must be a non-negative integer (seconds)"
[[ $RATE =~ ^[1-9][0-9]*$ ]] || die "--rate must be a positive integer"
case "$DURABILITY" in none|batch|always) ;; *) die "--durability must be none, batch or always" ;; esac

# --- tools -----------------------------------------------------------------------------------

declare -A PKG=([nginx]=nginx [haproxy]=haproxy [wrk]=wrk [curl]=curl [python3]=python3
                [taskset]=util-linux [ss]=iproute2)
missing_pkgs() {
    local t pkgs=()
    for t in nginx haproxy wrk curl python3 taskset ss; do
        command -v "$t" >/dev/null 2>&1 || pkgs+=("${PKG[$t]}")
    done
    echo "${pkgs[*]}"
}
MISSING=$(missing_pkgs)
if [[ -n $MISSING ]]; then
    if [[ $INSTALL == 1 ]]; then
        log "missing tools; installing with: apt-get update && apt-get install -y $MISSING"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y $MISSING
        # The Debian packages try to start system services; this bench never uses them.
        MISSING=$(missing_pkgs)
        [[ -z $MISSING ]] || die "still missing after install: $MISSING"
    else
        {
            echo "bench/run.sh: missing tools. Install these Debian packages:"
            echo
            echo "    apt-get install -y $MISSING"
            echo
            echo "(or rerun with --install to have this script run apt-get for you)"
        } >&2
        exit 2
    fi
fi

OPEN_TOOL=""
if command -v oha >/dev/null 2>&1; then
    OPEN_TOOL=oha
elif command -v h2load >/dev/null 2>&1; then
    OPEN_TOOL=h2load
fi
if [[ $OPEN_LOOP == auto ]]; then
    if [[ -n $OPEN_TOOL ]]; then
        SCENARIOS="$SCENARIOS,get_open"
    else
        log "open-loop latency skipped: neither oha nor h2load is installed (Debian: nghttp2-client)"
    fi
fi

IFS=, read -r -a SCENARIO_LIST <<<"$SCENARIOS"
for sc in "${SCENARIO_LIST[@]}"; do
    case "$sc" in
        get|post1k|post64k|block) ;;
        get_open) [[ -n $OPEN_TOOL ]] || die "get_open needs oha or h2load" ;;
        *) die "unknown scenario: $sc" ;;
    esac
done

NCPU=$(getconf _NPROCESSORS_ONLN)
[[ $NCPU -ge 2 ]] || die "needs at least 2 CPUs (the load generator and the system under test are pinned apart); found $NCPU"
CLK_TCK=$(getconf CLK_TCK)

# --- build, before anything is measured -------------------------------------------------------

if [[ $PGO == 1 ]]; then
    [[ -z $DOMICILE_BIN ]] || die "--pgo and --domicile-bin name two binaries; give one"
    DOMICILE_BIN="$ROOT/target/pgo/domicile"
    if [[ $BUILD == 1 ]]; then
        log "building: bench/pgo.sh (profile-guided)"
        "$BENCH_DIR/pgo.sh" || die "bench/pgo.sh failed"
    fi
elif [[ -z $DOMICILE_BIN ]]; then
    DOMICILE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/domicile"
fi
if [[ $BUILD == 1 && $PGO == 0 ]]; then
    log "building: cargo build --release -p domicile-gateway"
    (cd "$ROOT" && cargo build --release -p domicile-gateway) || die "cargo build failed"
fi
[[ -x $DOMICILE_BIN ]] || die "no domicile binary at $DOMICILE_BIN (build it, or drop --no-build)"

# --- run directory ----------------------------------------------------------------------------

for p in "${ALL_PORTS[@]}"; do
    if [[ -n $(ss -Hltn "sport = :$p") ]]; then
        die "port $p is already in use (ss -ltnp 'sport = :$p'); the bench needs ${ALL_PORTS[*]} on $HOST"
    fi
done

TS=$(date +%Y%m%d-%H%M%S)
RUN="$BENCH_DIR/results/$TS"
mkdir -p "$RUN/raw" "$RUN/trace" "$RUN/nginx-backend" "$RUN/nginx-proxy"
log "run directory: $RUN"

render() { # template output
    sed -e "s|@RUN@|$RUN|g" \
        -e "s|@PORT_EU@|$PORT_EU|g" -e "s|@PORT_US@|$PORT_US|g" \
        -e "s|@PORT_NGINX@|$PORT_NGINX|g" -e "s|@PORT_HAPROXY@|$PORT_HAPROXY|g" \
        -e "s|@PORT_DOMICILE@|$PORT_DOMICILE|g" -e "s|@PORT_ADMIN@|$PORT_ADMIN|g" \
        -e "s|@DURABILITY@|$DURABILITY|g" \
        "$BENCH_DIR/conf/$1" >"$RUN/$2"
}
render nginx-backend.conf.in nginx-backend.conf
render nginx-proxy.conf.in nginx-proxy.conf
render haproxy.cfg.in haproxy.cfg
render domicile.toml.in domicile.toml

mkdir -p "$RUN/bodies"
python3 "$BENCH_DIR/gen_bodies.py" "$RUN/bodies" >"$RUN/bodies.tsv" || die "gen_bodies.py failed"

# --- processes --------------------------------------------------------------------------------

PIDS=()          # everything this script started, in start order
LOAD_PID=""      # the running load generator, if any

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $LOAD_PID ]]; then kill -TERM "$LOAD_PID" 2>/dev/null || true; fi
    local i pid n
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((n = 0; n < 50; n++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ ${#PIDS[@]} -gt 0 ]]; then log "stopped the ${#PIDS[@]} processes this run started"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() { # port seconds
    local n
    for ((n = 0; n < $2 * 10; n++)); do
        if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

children_of() { ps -o pid= --ppid "$1" | tr -d ' ' | tr '\n' ' ' || true; }

# nginx opens its listening sockets before forking the worker: wait for the worker too.
wait_children() { # pid
    local n kids
    for ((n = 0; n < 100; n++)); do
        kids=$(children_of "$1")
        if [[ -n ${kids// /} ]]; then echo "$kids"; return 0; fi
        sleep 0.1
    done
    die "nginx master $1 has no worker process"
}

start_sut() { # name log cmd... ; sets LAST_PID
    local name=$1 out=$2
    shift 2
    taskset -c "$SUT_CPU" "$@" >"$out" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    log "started $name (pid $LAST_PID, CPU $SUT_CPU)"
}

start_sut backend "$RUN/nginx-backend/stdout.log" \
    nginx -p "$RUN/nginx-backend" -e "$RUN/nginx-backend/error.log" -c "$RUN/nginx-backend.conf"
BACKEND_MASTER=$LAST_PID
wait_port "$PORT_EU" 10 && wait_port "$PORT_US" 10 || die "nginx backend did not start: $(tail -5 "$RUN/nginx-backend/error.log")"

start_sut nginx "$RUN/nginx-proxy/stdout.log" \
    nginx -p "$RUN/nginx-proxy" -e "$RUN/nginx-proxy/error.log" -c "$RUN/nginx-proxy.conf"
NGINX_MASTER=$LAST_PID
wait_port "$PORT_NGINX" 10 || die "nginx proxy did not start: $(tail -5 "$RUN/nginx-proxy/error.log")"

haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy.cfg does not validate"
start_sut haproxy "$RUN/haproxy.log" haproxy -db -f "$RUN/haproxy.cfg"
HAPROXY_PID=$LAST_PID
wait_port "$PORT_HAPROXY" 10 || die "haproxy did not start: $(tail -5 "$RUN/haproxy.log")"

"$DOMICILE_BIN" check "$RUN/domicile.toml" >"$RUN/domicile-check.log" 2>&1 \
    || die "domicile check failed: $(cat "$RUN/domicile-check.log")"
start_sut domicile "$RUN/domicile.log" "$DOMICILE_BIN" serve --config "$RUN/domicile.toml"
DOMICILE_PID=$LAST_PID
for ((n = 0; n < 200; n++)); do
    grep -q '^listening on' "$RUN/domicile.log" 2>/dev/null && break
    kill -0 "$DOMICILE_PID" 2>/dev/null || die "domicile exited: $(tail -20 "$RUN/domicile.log")"
    sleep 0.1
done
grep -q '^listening on' "$RUN/domicile.log" || die "domicile did not print 'listening on' within 20 s"
wait_port "$PORT_DOMICILE" 10 || die "domicile is not accepting on $PORT_DOMICILE"

# nginx workers are children of the masters; they do not change during the run.
BACKEND_PIDS="$BACKEND_MASTER $(wait_children "$BACKEND_MASTER")"
NGINX_PIDS="$NGINX_MASTER $(wait_children "$NGINX_MASTER")"
for pid in $BACKEND_PIDS $NGINX_PIDS; do PIDS+=("$pid"); done
declare -A TARGET_PIDS=([direct]="" [nginx]="$NGINX_PIDS" [haproxy]="$HAPROXY_PID" [domicile]="$DOMICILE_PID")
log "CPU accounted: backend pids [$BACKEND_PIDS], nginx [$NGINX_PIDS], haproxy [$HAPROXY_PID], domicile [$DOMICILE_PID] (all threads)"

# --- scenarios --------------------------------------------------------------------------------

# Sets S_* for one scenario.
scenario_def() {
    S_TOOL=wrk S_XFF=$XFF_DE S_NOTE=""
    case "$1" in
        get)
            S_TITLE="(a) GET small, pass-through route, keep-alive, c=32, closed loop"
            S_METHOD=GET S_PATH=/catalog/items/42 S_BODY=- S_CONC=32
            S_DIRECT_PORT=$PORT_US S_EXPECT=200
            S_NOTE="Domicile: placement \"any\" route, no body inspection; GeoIP, policy decision and trace record still done." ;;
        post1k)
            S_TITLE="(b) POST 1 KiB JSON with personal data, c=16, closed loop"
            S_METHOD=POST S_PATH=/customers S_BODY=pii-1k.json S_CONC=16
            S_DIRECT_PORT=$PORT_EU S_EXPECT=200
            S_NOTE="Domicile inspects the body (email, +49 phone) on a placement \"home\" route and forwards to eu-central; nginx and HAProxy only forward. The ratio prices inspection." ;;
        post64k)
            S_TITLE="(c) POST 64 KiB JSON with sparse personal data, c=16, closed loop"
            S_METHOD=POST S_PATH=/customers S_BODY=pii-64k.json S_CONC=16
            S_DIRECT_PORT=$PORT_EU S_EXPECT=200
            S_NOTE="Domicile inspects 64 KiB per request; nginx and HAProxy only forward." ;;
        block)
            S_TITLE="(d) Block path: POST 1 KiB personal data from DE to an uncertified US route, c=16, closed loop"
            S_METHOD=POST S_PATH=/analytics S_BODY=pii-1k.json S_CONC=16
            S_DIRECT_PORT=$PORT_US S_EXPECT=451
            S_NOTE="Not equivalent work: Domicile reads and inspects the body, resolves GeoIP, evaluates the policy and writes a decision record before answering 451; nginx and HAProxy answer a static 451 from a path match. \"direct\" is the backend answering 200 to the same POST." ;;
        get_open)
            S_TITLE="(e) GET small, pass-through route, open loop at $RATE rps ($OPEN_TOOL)"
            S_METHOD=GET S_PATH=/catalog/items/42 S_BODY=- S_CONC=16
            S_DIRECT_PORT=$PORT_US S_EXPECT=200 S_TOOL=$OPEN_TOOL
            S_NOTE="Fixed request rate with oha --latency-correction, c=16."
            if [[ $OPEN_TOOL == h2load ]]; then
                # h2load's per-connection timers fire together: c connections send bursts of c
                # requests. Two connections keep the bursts small and each one's interval
                # (2/rate) above the response time.
                S_CONC=2
                S_NOTE="Fixed request rate with h2load --rps, c=2: h2load paces each connection at rate/c with synchronised timers (bursts of c requests) and does not correct for coordinated omission, so this is only roughly open loop; oha --latency-correction is preferred when installed."
            fi ;;
    esac
}

target_port() {
    case "$1" in
        direct) echo "$S_DIRECT_PORT" ;;
        nginx) echo "$PORT_NGINX" ;;
        haproxy) echo "$PORT_HAPROXY" ;;
        domicile) echo "$PORT_DOMICILE" ;;
    esac
}

target_expect() { if [[ $1 == direct ]]; then echo 200; else echo "$S_EXPECT"; fi; }

body_path() { if [[ $S_BODY == - ]]; then echo -; else echo "$RUN/bodies/$S_BODY"; fi; }

# "user system": utime and stime, in clock ticks, summed over the given pids (all threads of
# each).
ticks() {
    local pid s user=0 system=0 fields
    for pid in "$@"; do
        s=$(<"/proc/$pid/stat") || die "process $pid is gone"
        s=${s##*) }
        read -r -a fields <<<"$s"
        user=$((user + fields[11]))
        system=$((system + fields[12]))
    done
    echo "$user $system"
}

# Nanoseconds Domicile's trace writer threads (the writer, and the flusher of `none` durability,
# named domicile-trace*) have run: exact, from each thread's schedstat. 0 if it has none.
trace_thread_ns() { # pid
    local t comm run _rest total=0
    for t in /proc/"$1"/task/*; do
        comm=$(<"$t/comm") 2>/dev/null || continue
        [[ $comm == domicile-trace* ]] || continue
        read -r run _rest <"$t/schedstat" 2>/dev/null || continue
        total=$((total + run))
    done
    echo "$total"
}

# "total steal" jiffies from the aggregate cpu line of /proc/stat.
cpu_stat() {
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + idle + iowait + irq + softirq + steal)) $steal"
}

# "decisions outcomes": lines in Domicile's chain files, by schema (a forwarded request also
# gets a detached outcome line after the backend answered; a block gets only its decision).
trace_counts() {
    local files
    files=$(find "$RUN/trace" -name decisions.jsonl 2>/dev/null)
    if [[ -z $files ]]; then echo "0 0"; return; fi
    # shellcheck disable=SC2086
    echo "$(cat $files | grep -c -F '"schema":"domicile.decision/' || true)" \
         "$(cat $files | grep -c -F '"schema":"domicile.outcome/' || true)"
}

# Runs the load generator in the background (so signals reach the trap) and waits for it.
load_gen() { # url seconds outfile
    local url=$1 secs=$2 out=$3 body rc=0
    body=$(body_path)
    case "$S_TOOL" in
        wrk)
            taskset -c "$CLIENT_CPU" wrk -t1 -c"$S_CONC" -d"${secs}s" --timeout 5s --latency \
                -s "$BENCH_DIR/wrk/request.lua" "$url" -- "$S_METHOD" "$body" "$S_XFF" >"$out" 2>&1 &
            ;;
        oha)
            local fmt=(--output-format json)
            oha --help 2>/dev/null | grep -q -- '--output-format' || fmt=(--json)
            taskset -c "$CLIENT_CPU" oha --no-tui "${fmt[@]}" -z "${secs}s" -q "$RATE" -c "$S_CONC" \
                --latency-correction -H "X-Forwarded-For: $S_XFF" "$url" >"$out" 2>&1 &
            ;;
        h2load)
            local per=$(((RATE + S_CONC - 1) / S_CONC))
            rm -f "$out.log"
            taskset -c "$CLIENT_CPU" h2load --h1 -t1 -c"$S_CONC" --rps="$per" -D "$secs" \
                --log-file="$out.log" -H "X-Forwarded-For: $S_XFF" "$url" >"$out" 2>&1 &
            ;;
    esac
    LOAD_PID=$!
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=""
    [[ $rc == 0 ]] || die "$S_TOOL exited with $rc: $(tail -5 "$out")"
}

# One request per target and scenario before measuring: the status must be the expected one.
preflight() {
    local sc t url code body expect
    for sc in "${SCENARIO_LIST[@]}"; do
        scenario_def "$sc"
        body=$(body_path)
        for t in direct nginx haproxy domicile; do
            url="http://$HOST:$(target_port "$t")$S_PATH"
            expect=$(target_expect "$t")
            local args=(-s -o "$RUN/raw/preflight-$sc-$t.body" -w '%{http_code}' --max-time 10
                        -X "$S_METHOD" -H "X-Forwarded-For: $S_XFF")
            if [[ $body != - ]]; then
                args+=(-H 'Content-Type: application/json' --data-binary "@$body")
            fi
            code=$(curl "${args[@]}" "$url" || true)
            if [[ $code != "$expect" ]]; then
                die "preflight $sc/$t: $S_METHOD $url answered $code, expected $expect: $(head -c 400 "$RUN/raw/preflight-$sc-$t.body" 2>/dev/null)"
            fi
        done
    done
    # nginx's bare `return 200` must read and discard a POST body and keep the connection.
    local ka
    ka=$(curl -s -o /dev/null -o /dev/null -w '%{http_code}/%{num_connects} ' -H 'Content-Type: application/json' \
        --data-binary "@$RUN/bodies/pii-64k.json" "http://$HOST:$PORT_EU/customers" "http://$HOST:$PORT_EU/customers")
    [[ $ka == "200/1 200/0 " ]] || die "backend keep-alive after a 64 KiB POST failed: got '$ka', expected '200/1 200/0 '"
    log "preflight OK: every target answers as expected; backend keeps the connection after a POST body"
}

TSV="$RUN/results.tsv"
printf '%s\n' "scenario	title	method	path	body	conc	tool	note	block	target	requests	duration_s	rps	p50_us	p90_us	p99_us	non2xx	unexpected	sock_errors	expected_status	proxy_cpu_us_req	backend_cpu_us_req	steal_pct	trace_delta	outcome_delta	proxy_user_us_req	proxy_sys_us_req	trace_threads_us_req" >"$TSV"

run_point() { # scenario block target
    local sc=$1 b=$2 t=$3
    scenario_def "$sc"
    local url raw expect pids tr0="" tr1="" trace_delta=NA outcome_delta=NA tw0=0 tw1=0
    url="http://$HOST:$(target_port "$t")$S_PATH"
    expect=$(target_expect "$t")
    raw="$RUN/raw/$sc-b$b-$t"
    pids=${TARGET_PIDS[$t]}

    if [[ $WARMUP -gt 0 ]]; then load_gen "$url" "$WARMUP" "$raw.warmup.txt"; fi
    sleep 0.2
    if [[ $t == domicile ]]; then tr0=$(trace_counts); fi

    local c0 p0="0 0" k0 c1 p1="0 0" k1
    c0=$(cpu_stat)
    # shellcheck disable=SC2086
    if [[ -n $pids ]]; then p0=$(ticks $pids); fi
    # shellcheck disable=SC2086
    k0=$(ticks $BACKEND_PIDS)
    if [[ $t == domicile ]]; then tw0=$(trace_thread_ns "$pids"); fi
    load_gen "$url" "$DURATION" "$raw.txt"
    if [[ $t == domicile ]]; then tw1=$(trace_thread_ns "$pids"); fi
    # shellcheck disable=SC2086
    if [[ -n $pids ]]; then p1=$(ticks $pids); fi
    # shellcheck disable=SC2086
    k1=$(ticks $BACKEND_PIDS)
    c1=$(cpu_stat)

    if [[ $t == domicile ]]; then
        sleep 0.3
        tr1=$(trace_counts)
        trace_delta=$((${tr1% *} - ${tr0% *}))
        outcome_delta=$((${tr1#* } - ${tr0#* }))
    fi

    local requests dur_us non2xx sock p50 p90 p99
    read -r requests dur_us non2xx sock p50 p90 p99 < <(python3 "$BENCH_DIR/parse_load.py" "$S_TOOL" "$raw.txt") \
        || die "cannot parse $raw.txt"
    [[ $requests -gt 0 ]] || die "$sc/$t: no request completed (see $raw.txt)"

    local unexpected
    if [[ $expect == 200 ]]; then unexpected=$non2xx; else unexpected=$((requests - non2xx)); fi

    local line
    line=$(awk -v r="$requests" -v d="$dur_us" -v p0="$p0" -v p1="$p1" -v k0="$k0" -v k1="$k1" \
        -v hz="$CLK_TCK" -v has_proxy="${pids:+1}" -v c0="$c0" -v c1="$c1" 'BEGIN {
            split(c0, a, " "); split(c1, z, " ");
            dt = z[1] - a[1]; ds = z[2] - a[2];
            steal = dt > 0 ? 100 * ds / dt : 0;
            split(p0, pa, " "); split(p1, pz, " "); split(k0, ka, " "); split(k1, kz, " ");
            pu = (pz[1] - pa[1]) * 1e6 / hz / r; ps = (pz[2] - pa[2]) * 1e6 / hz / r;
            pc = has_proxy ? sprintf("%.3f", pu + ps) : "NA";
            pcu = has_proxy ? sprintf("%.3f", pu) : "NA";
            pcs = has_proxy ? sprintf("%.3f", ps) : "NA";
            kc = (kz[1] + kz[2] - ka[1] - ka[2]) * 1e6 / hz / r;
            printf "%.3f\t%.1f\t%s\t%.3f\t%.2f\t%s\t%s", d / 1e6, r * 1e6 / d, pc, kc, steal, pcu, pcs
        }')
    local dur_s rps pcpu bcpu steal pcpu_user pcpu_sys trace_cpu=NA
    IFS=$'\t' read -r dur_s rps pcpu bcpu steal pcpu_user pcpu_sys <<<"$line"
    if [[ $t == domicile ]]; then
        trace_cpu=$(awk -v a="$tw0" -v z="$tw1" -v r="$requests" 'BEGIN { printf "%.3f", (z - a) / 1000 / r }')
    fi

    printf '%s\n' "$sc	$S_TITLE	$S_METHOD	$S_PATH	$S_BODY	$S_CONC	$S_TOOL	$S_NOTE	$b	$t	$requests	$dur_s	$rps	$p50	$p90	$p99	$non2xx	$unexpected	$sock	$expect	$pcpu	$bcpu	$steal	$trace_delta	$outcome_delta	$pcpu_user	$pcpu_sys	$trace_cpu" >>"$TSV"

    local extra=""
    if [[ $unexpected -gt 0 || $sock -gt 0 ]]; then
        extra=" !! $unexpected responses not $expect, $sock socket errors"
    fi
    if [[ $trace_delta != NA ]]; then extra="$extra, decisions +$trace_delta, outcomes +$outcome_delta"; fi
    log "$(printf '%-8s b%-2s %-8s %9s rps  p50 %6s µs  p99 %7s µs  proxy %8s µs/req  backend %6s µs/req  steal %5s%%%s' \
        "$sc" "$b" "$t" "$rps" "$p50" "$p99" "$pcpu" "$bcpu" "$steal" "$extra")"
}

# "clean", or why the block is not: summarize.py's rule (every target's steal at most
# STEAL_LIMIT %, no unexpected responses or socket errors; performance.md §8.4), asked of it so
# that the count here and the summary's medians cannot disagree.
block_verdict() { # scenario block
    python3 "$BENCH_DIR/summarize.py" --verdict "$RUN" "$1" "$2"
}

# --- context ----------------------------------------------------------------------------------

{
    echo "timestamp=$TS"
    echo "git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | grep -v '^?? bench/' || true) ]]; then
        echo "git_dirty=yes"
    else
        echo "git_dirty=no"
    fi
    echo "domicile_built=$(date -r "$DOMICILE_BIN" '+%F %T')"
    echo "domicile_bin=$DOMICILE_BIN"
    echo "domicile_pgo=$([[ $PGO == 1 ]] && echo yes || echo no)"
    echo "durability=$DURABILITY"
    echo "blocks=$BLOCKS"
    echo "clean_blocks=$CLEAN_BLOCKS"
    echo "duration=$DURATION"
    echo "warmup=$WARMUP"
    echo "client_cpu=$CLIENT_CPU"
    echo "sut_cpu=$SUT_CPU"
    tools="$( (nginx -v 2>&1 || true) | sed 's/.*version: //'), $( (haproxy -v 2>/dev/null || true) | awk 'NR == 1 {print "HAProxy " $3}'), $( (wrk -v 2>&1 || true) | awk 'NR == 1 {print "wrk " $2}')"
    if [[ -n $OPEN_TOOL ]]; then tools="$tools, $( ("$OPEN_TOOL" --version 2>&1 || true) | awk 'NR == 1')"; fi
    echo "tools=$tools"
    echo "kernel=$(uname -r)"
    echo "ncpu=$NCPU"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RUN/meta.env"

# --- measure ----------------------------------------------------------------------------------

preflight

TARGETS=(direct nginx haproxy domicile)
total_points=$((${#SCENARIO_LIST[@]} * BLOCKS * ${#TARGETS[@]}))
if [[ -n $CLEAN_BLOCKS ]]; then
    log "measuring: ${#SCENARIO_LIST[@]} scenario(s) × blocks until $CLEAN_BLOCKS clean (at most $BLOCKS) × ${#TARGETS[@]} targets = at most $total_points points of ${WARMUP}+${DURATION} s"
else
    log "measuring: ${#SCENARIO_LIST[@]} scenario(s) × $BLOCKS block(s) × ${#TARGETS[@]} targets = $total_points points of ${WARMUP}+${DURATION} s"
fi
# Scenarios outer, blocks inner: with --clean-blocks a scenario stops at its K-th clean block.
for sc in "${SCENARIO_LIST[@]}"; do
    clean=0
    for ((b = 1; b <= BLOCKS; b++)); do
        for t in "${TARGETS[@]}"; do
            run_point "$sc" "$b" "$t"
        done
        verdict=$(block_verdict "$sc" "$b")
        if [[ $verdict == clean ]]; then clean=$((clean + 1)); fi
        log "$sc block $b: $verdict ($clean of $b clean so far${CLEAN_BLOCKS:+, $CLEAN_BLOCKS wanted})"
        if [[ -n $CLEAN_BLOCKS && $clean -ge $CLEAN_BLOCKS ]]; then break; fi
    done
    if [[ -n $CLEAN_BLOCKS && $clean -lt $CLEAN_BLOCKS ]]; then
        log "$sc: $clean clean block(s) of the $CLEAN_BLOCKS wanted after $BLOCKS blocks, the cap; the summary marks it"
    fi
done

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN/meta.env"

trace_bytes=$(du -sh "$RUN/trace" 2>/dev/null | cut -f1)
if [[ $KEEP_TRACES == 0 ]]; then
    find "$RUN/trace" -name decisions.jsonl -delete 2>/dev/null || true
    log "decision files ($trace_bytes) deleted; --keep-traces keeps them"
fi

echo
python3 "$BENCH_DIR/summarize.py" "$RUN"
echo
log "raw numbers: $TSV"
log "summary:     $RUN/summary.md"
