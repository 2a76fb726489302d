#!/usr/bin/env bash
# Switchyard's embedded DNS server side by side with aardvark-dns and dnsmasq,
# in ONE run, interleaved run by run (round r measures every server once, in
# an order rotated each round), answering the same local names.
#
#   sy          Switchyard's resolver (release build): a client container
#               queries 127.0.0.11:53 in its own namespace for the names of
#               other containers (web1..webN, aliases alias1..aliasN) on its
#               network; the daemon answers from its DNS thread.
#   aardvark    aardvark-dns on a gateway address 10.226.0.1 in one netns, the
#               client in another, joined by a veth (the anchors' dns_anchor.sh)
#   dnsmasq     dnsmasq (--addn-hosts, same names), same veth setup as aardvark
#   dnsmasq_lo  dnsmasq on 127.0.0.11:53 inside the client's own namespace:
#               the loopback path Switchyard's clients use, without a veth
#   limit       benches/limit_dns.c (compiled here with gcc -O2) on
#               127.0.0.11:53 in the client's namespace: the ideal responder
#               (batched recvmmsg/sendmmsg, fixed answer, no lookup), i.e. the
#               ceiling of any server on this machine with this client
#
# Tests (TESTS="qps lat", default both):
#   qps   dnsperf -c 4 -q 100 -l $DUR (100 queries outstanding), queries/s
#   lat   dns_latency.py: 2000 sequential queries, median and p99 in µs
#   rate  opt-in (TESTS="qps lat rate"): dnsperf -Q R (a fixed R queries/s)
#         for each R in RATES="1000 10000 30000": the server's CPU and
#         dnsperf's average latency at ordinary loads (what busy polling costs)
# The CPU the server process used during each test is reported too (% of one
# core), and the machine's total busy CPU (% of all cores).
#
# Output: stdout gets one anchor-style line per server, a table (metric x
# server), the load average of every phase, and the ratios against the goals
# of issue 5 (qps >= 1.5x dnsmasq, p99 <= dnsmasq's). Per-run values go to
# stderr. Tee stdout into benches/results/ to keep it.
#
# Needs: root, ip (iproute2), python3, dnsperf, dig (dnsutils), dnsmasq, gcc,
# aardvark-dns (/usr/lib/podman/aardvark-dns, or AARDVARK=PATH), a release
# build of switchyard (SWITCHYARD_BIN, default
# ${CARGO_TARGET_DIR:-<repo>/target}/release/switchyard), and the anchors'
# lib.sh and dns_latency.py from $ANCHORS (default <repo>/../shared/anchors).
#
# Knobs: RUNS=3, DUR=5 s per dnsperf run, LAT_COUNT=2000, NREC=20 names,
# TESTS, RATES, SERVERS="sy aardvark dnsmasq dnsmasq_lo limit",
# ANCH_PREFIX=swyd, ANCH_NICE=-10, AARDVARK=PATH, LIMIT_BATCH=64 (the ideal
# responder's batch), HOLD=SECS (after setup, print namespaces and pids and
# wait), PERF_DIR=DIR (`perf record -e cpu-clock -g` of each Switchyard daemon
# during the first run of each test, into DIR; do not compare numbers taken
# with it), and for experiments SY_ENV_TAG / SY_FLAGS_TAG / SY_BIN_TAG: a
# server named sy_TAG is one more Switchyard daemon with the environment
# words in $SY_ENV_TAG, the daemon flags in $SY_FLAGS_TAG and the binary
# $SY_BIN_TAG (default: the same binary).
#
# Safety: queries only go to servers in namespaces made here (no namespace
# has a route out; the daemon's upstream is a dead local port, so nothing is
# forwarded); every load is bounded (dnsperf -l, dns_latency.py's own
# limits); the EXIT trap removes containers, daemon, servers, namespaces and
# temp dirs, even on failure.

# shellcheck disable=SC2015  # "a && b || die": die when either step fails
HERE=$(cd "$(dirname "$0")" && pwd)
ANCHORS=${ANCHORS:-$HERE/../../shared/anchors}
[ -f "$ANCHORS/lib.sh" ] || { echo "ERROR: anchors not found in $ANCHORS (set ANCHORS=DIR)" >&2; exit 1; }
ANCHORS=$(cd "$ANCHORS" && pwd)
export ANCH_PREFIX=${ANCH_PREFIX:-swyd}
# shellcheck source=/dev/null
source "$ANCHORS/lib.sh"
# shellcheck source=lib_switchyard.sh
source "$HERE/lib_switchyard.sh"
trap 'sy_cleanup_all; anch_cleanup; sy_kill_leftovers' EXIT

SERVERS=${SERVERS:-"sy aardvark dnsmasq dnsmasq_lo limit"}
read -r -a SERVER_LIST <<<"$SERVERS"
NREC=${NREC:-20}
LAT_COUNT=${LAT_COUNT:-2000}
AARDVARK=${AARDVARK:-/usr/lib/podman/aardvark-dns}
need dnsperf dig
[ -f "$ANCHORS/dns_latency.py" ] || die "missing $ANCHORS/dns_latency.py"
for s in "${SERVER_LIST[@]}"; do
    case $s in
    sy | sy_*) sy_find_bin ;;
    aardvark) [ -x "$AARDVARK" ] || die "aardvark-dns not found at $AARDVARK (set AARDVARK=PATH)" ;;
    dnsmasq | dnsmasq_lo) need dnsmasq ;;
    limit) need gcc ;;
    *) die "unknown server $s (choose from: sy aardvark dnsmasq dnsmasq_lo limit, or sy_TAG)" ;;
    esac
done
[ -n "${PERF_DIR:-}" ] && { need perf; mkdir -p "$PERF_DIR" || die "PERF_DIR"; PERF_DIR=$(cd "$PERF_DIR" && pwd); }

P=$ANCH_PREFIX
CLK_TCK=$(getconf CLK_TCK)
mk_tmpdir T
RAW=$T/raw
: >"$RAW"
declare -A QNS SRV SWPID

HOSTS_FILE=$T/hosts
: >"$HOSTS_FILE"; : >"$T/queries"; NAMES=()
for i in $(seq 1 "$NREC"); do
    echo "10.226.1.$i web$i alias$i" >>"$HOSTS_FILE"
    echo "web$i A" >>"$T/queries"; NAMES+=("web$i")
done

# --- servers ---------------------------------------------------------------

# veth_pair NAME: netns $P-NAME-d (server, 10.226.0.1) and $P-NAME-q (client,
# 10.226.0.2) joined by a veth
veth_pair() {
    local d=$P-$1-d q=$P-$1-q
    ns_add "$d"; ns_add "$q"
    ip link add vd netns "$d" type veth peer name vq netns "$q" || die veth
    ip -n "$d" addr add 10.226.0.1/24 dev vd && ip -n "$d" link set vd up || die addr
    ip -n "$q" addr add 10.226.0.2/24 dev vq && ip -n "$q" link set vq up || die addr
    QNS[$1]=$q SRV[$1]=10.226.0.1
}

start_dnsmasq() {   # NAME NETNS LISTEN_ADDR
    local mdir
    mk_tmpdir mdir
    bg_run "$2" "$mdir/log" dnsmasq -k --no-resolv --no-hosts --addn-hosts="$HOSTS_FILE" \
        --listen-address="$3" --bind-interfaces --port=53 --user=root \
        --pid-file="$mdir/pid" --cache-size=1000 --log-facility=-
    SWPID[$1]=$BG_PID
    wait_port "$2" udp 53 || die "dnsmasq ($1) not listening: $(cat "$mdir/log")"
}

setup_dnsmasq() { veth_pair dnsmasq; start_dnsmasq dnsmasq "$P-dnsmasq-d" 10.226.0.1; }

setup_dnsmasq_lo() {
    local q=$P-dnsmasq_lo-q
    ns_add "$q"
    ip -n "$q" addr add 127.0.0.11/32 dev lo 2>/dev/null   # so --bind-interfaces finds it
    QNS[dnsmasq_lo]=$q SRV[dnsmasq_lo]=127.0.0.11
    start_dnsmasq dnsmasq_lo "$q" 127.0.0.11
}

setup_limit() {
    local q=$P-limit-q ldir
    mk_tmpdir ldir
    gcc -O2 -o "$ldir/limit_dns" "$HERE/limit_dns.c" || die "cannot compile limit_dns.c"
    ns_add "$q"
    QNS[limit]=$q SRV[limit]=127.0.0.11
    bg_run "$q" "$ldir/log" "$ldir/limit_dns" 127.0.0.11 53 "${LIMIT_BATCH:-64}"
    SWPID[limit]=$BG_PID
    wait_port "$q" udp 53 || die "limit_dns not listening: $(cat "$ldir/log")"
}

setup_aardvark() {
    local adir i
    mk_tmpdir adir
    veth_pair aardvark
    mkdir -p "$adir/config"
    { echo "10.226.0.1"; echo "client0 10.226.0.2  client"
      for i in $(seq 1 "$NREC"); do echo "ctr$i 10.226.1.$i  web$i,alias$i"; done
    } >"$adir/config/anchnet"
    # `aardvark-dns run` forks into the background and writes aardvark.pid
    (cd "$adir" && ip netns exec "$P-aardvark-d" "$AARDVARK" --config "$adir/config" -p 53 run >"$adir/log" 2>&1)
    for _ in $(seq 50); do [ -s "$adir/config/aardvark.pid" ] && break; sleep 0.1; done
    [ -s "$adir/config/aardvark.pid" ] || die "aardvark-dns wrote no pid: $(cat "$adir/log")"
    reg_pid "$(cat "$adir/config/aardvark.pid")"
    SWPID[aardvark]=$(cat "$adir/config/aardvark.pid")
    wait_port "$P-aardvark-d" udp 53 || die "aardvark-dns not listening: $(cat "$adir/log")"
}

setup_sy() {   # NAME [daemon flags]
    # shellcheck disable=SC2034  # ip: set by sy_container, not needed here
    local name=$1 sock pid ip i; shift
    sy_daemon sock pid "$P-$name-d" "$@"
    SWPID[$name]=$pid
    sy "$sock" network create dnsnet --subnet 10.227.0.0/16 >/dev/null || die "network create"
    sy_container ip "$sock" client dnsnet "$P-$name-q"
    for i in $(seq 1 "$NREC"); do
        sy_container ip "$sock" "web$i" dnsnet "$P-$name-w$i" --alias "alias$i"
    done
    QNS[$name]=$P-$name-q SRV[$name]=127.0.0.11
}

for s in "${SERVER_LIST[@]}"; do
    log "setting up $s"
    case $s in
    sy) setup_sy sy ;;
    sy_*)
        sy_variant "${s#sy_}"
        setup_sy "$s" "${SY_VARIANT_FLAGS[@]}"
        sy_variant_end ;;
    *) "setup_$s" ;;
    esac
    ans=""
    for _ in $(seq 20); do
        ans=$(nsx "${QNS[$s]}" dig @"${SRV[$s]}" web1 A +short +tries=1 +time=1 2>&1 | head -1)
        [[ $ans =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] && break; sleep 0.2
    done
    [[ $ans =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "web1 does not resolve through $s (dig: $ans)"
    log "$s: web1 -> $ans"
done

if [ "${HOLD:-0}" != 0 ]; then
    for s in "${SERVER_LIST[@]}"; do log "HOLD: $s: client netns ${QNS[$s]} -> ${SRV[$s]}:53, server pid ${SWPID[$s]}"; done
    sleep "$HOLD" &
    reg_pid $!
    wait $!
fi

# --- measuring -----------------------------------------------------------

rec() { echo "$*" >>"$RAW"; }
now_ns() { date +%s%N; }

measure() {   # SERVER TEST RUN
    local s=$1 test=$2 r=$3 c0 c1 t0 t1 a b c n0 b0 tt0 b1 tt1 perf_pid=
    if [ -n "${PERF_DIR:-}" ] && [ "$r" = 0 ] && [[ $s == sy* ]]; then
        bg_run - "$PERF_DIR/$s-dns-$test.log" perf record -e cpu-clock -g -p "${SWPID[$s]}" \
            -o "$PERF_DIR/$s-dns-$test.data" -- sleep "$DUR"
        perf_pid=$BG_PID
    fi
    n0=$(wc -l <"$RAW")
    c0=$(cpu_ticks "${SWPID[$s]}")
    read -r b0 tt0 < <(cpu_all)
    t0=$(now_ns)
    case $test in
    qps)
        a=$(nsx "${QNS[$s]}" timeout $((DUR + 15)) dnsperf -s "${SRV[$s]}" -d "$T/queries" -l "$DUR" -c 4 -q 100 2>&1 |
            awk '/Queries per second/ {q=$4} END {print (q==""?"nan":q)}')
        rec "$s" qps "$a" ;;
    rate*)
        read -r a b < <(nsx "${QNS[$s]}" timeout $((DUR + 15)) dnsperf -s "${SRV[$s]}" -d "$T/queries" -l "$DUR" \
            -c 4 -q 100 -Q "${test#rate}" 2>&1 |
            awk '/Queries per second/ {q=$4} /Average Latency/ {l=$4*1e6} END {print (q==""?"nan":q), (l==""?"nan":l)}')
        rec "$s" "qps_$test" "$a"; rec "$s" "avglat_$test" "$b" ;;
    lat)
        read -r a b c < <(nsx "${QNS[$s]}" timeout 20 python3 "$ANCHORS/dns_latency.py" "${SRV[$s]}" 53 "$LAT_COUNT" "${NAMES[@]}")
        rec "$s" lat_median "${a:-nan}"; rec "$s" lat_p99 "${b:-nan}"; rec "$s" lat_ok "${c:-nan}" ;;
    esac
    t1=$(now_ns)
    c1=$(cpu_ticks "${SWPID[$s]}")
    read -r b1 tt1 < <(cpu_all)
    rec "$s" "cpu_$test" "$(python3 -c "print('%.0f' % (100.0*($c1-$c0)/$CLK_TCK/(($t1-$t0)/1e9)))")"
    rec "$s" "cpuall_$test" "$(python3 -c "print('%.0f' % (100.0*($b1-$b0)/max(1,$tt1-$tt0)))")"
    log "$test run $r $s: $(tail -n "$(($(wc -l <"$RAW") - n0))" "$RAW" | cut -d' ' -f2- | tr '\n' ' ')"
    [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null
    return 0
}

phase() {   # TEST: RUNS rounds over the servers, rotated each round
    local test=$1 n=${#SERVER_LIST[@]} r i l0
    l0=$(loadavg)
    for ((r = 0; r < RUNS; r++)); do
        for ((i = 0; i < n; i++)); do
            measure "${SERVER_LIST[(r + i) % n]}" "$test" "$r"
            sleep 0.5
        done
    done
    rec _ "load_$test" "$l0->$(loadavg)"
}

L_START=$(loadavg)
log "measuring: servers ${SERVER_LIST[*]}, RUNS=$RUNS DUR=$DUR, load1 $L_START"
want qps && phase qps
want lat && phase lat
if [[ " ${TESTS:-} " == *" rate "* ]]; then
    for q in ${RATES:-1000 10000 30000}; do phase "rate$q"; done
fi

# --- report --------------------------------------------------------------
python3 - "$RAW" "$L_START" "$(loadavg)" "${SERVER_LIST[@]}" <<'EOF'
import sys, statistics, math
raw, l_start, l_end, servers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
vals, loads = {}, {}
for line in open(raw):
    s, m, v = line.split(None, 2)
    v = v.strip()
    if s == "_":
        loads[m[5:]] = v; continue
    try:
        x = float(v)
    except ValueError:
        continue
    if not math.isnan(x):
        vals.setdefault((s, m), []).append(x)

def med(s, m):
    v = vals.get((s, m))
    return statistics.median(v) if v else None

def f(x):
    return "%.3g" % x if abs(x) < 100 else "%.0f" % x

def cell(s, m):
    v = vals.get((s, m))
    if not v:
        return "-"
    return "%s[%s-%s]" % (f(statistics.median(v)), f(min(v)), f(max(v))) if len(v) > 1 else f(v[0])

rows = [("qps", "queries/s (dnsperf -c4 -q100)", ""), ("lat_median", "latency median us", "us"),
        ("lat_p99", "latency p99 us", "us"), ("cpu_qps", "server CPU% during qps", "%"),
        ("cpuall_qps", "machine CPU% during qps", "%"), ("cpu_lat", "server CPU% during lat", "%")]
for k in sorted({m for (_, m) in vals if m.startswith(("qps_rate", "avglat_rate", "cpu_rate"))},
               key=lambda m: (int(m.rsplit("rate", 1)[1]), m)):
    q = k.rsplit("rate", 1)[1]
    label = {"qps": "queries/s at -Q %s", "avglat": "avg latency us at -Q %s",
             "cpu": "server CPU%% at -Q %s"}[k.split("_")[0]] % q
    rows.append((k, label, "us" if k.startswith("avglat") else ("%" if k.startswith("cpu") else "")))
rows = [r for r in rows if any((s, r[0]) in vals for s in servers)]
for s in servers:
    fields = []
    for m, _, unit in rows:
        v = vals.get((s, m))
        if v:
            fields.append("%s=%s%s[%s-%s]" % (m, f(statistics.median(v)), unit, f(min(v)), f(max(v))))
    print("dns_compare_%s %s" % (s, " ".join(fields)))
print()
w0 = max(len(r[1]) for r in rows) if rows else 10
w = max([len(s) for s in servers] + [len(cell(s, m)) for s in servers for m, _, _ in rows] + [8])
print("%-*s  %s" % (w0, "metric (median[min-max])", "  ".join("%-*s" % (w, s) for s in servers)))
for m, label, _ in rows:
    print("%-*s  %s" % (w0, label, "  ".join("%-*s" % (w, cell(s, m)) for s in servers)))
print("load1: start %s, end %s; per phase: %s" % (l_start, l_end,
      ", ".join("%s %s" % (k, v) for k, v in loads.items())))
print()
print("goals (ratio of medians from this run; the goal is against the anchor's dnsmasq):")
for ours in [s for s in servers if s == "sy" or s.startswith("sy_")]:
    for peer in ("dnsmasq", "dnsmasq_lo", "aardvark"):
        for m, op, target, text in (("qps", ">=", 1.5, "qps >= 1.5x %s" % peer),
                                    ("lat_p99", "<=", 1.0, "p99 latency <= %s's" % peer)):
            a, b = med(ours, m), med(peer, m)
            if a is None or b is None or b == 0:
                continue
            r = a / b
            ok = r >= target if op == ">=" else r <= target
            official = ours == "sy" and peer == "dnsmasq"
            verdict = ("MET" if ok else "MISSED") if official else ("met" if ok else "missed") + " (info)"
            print("  %-8s %-30s %s/%s = %6.3g  (%s %g)  %s" % (ours, text, ours, peer, r, op, target, verdict))
    for m, text in (("qps", "qps vs the ideal responder"), ("lat_p99", "p99 vs the ideal responder")):
        a, b = med(ours, m), med("limit", m)
        if a is not None and b:
            print("  %-8s %-30s %s/limit = %6.3g  (ceiling, no goal)" % (ours, text, ours, a / b))
EOF
