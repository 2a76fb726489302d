#!/usr/bin/env bash
# Switchyard's data plane side by side with its peers, in ONE run, on this
# machine: the same iperf3/ping tests through five setups, interleaved run by
# run (round r measures every setup once, in an order rotated each round), so
# a change of load on a shared machine hits every column alike.
#
#   sy        Switchyard daemon (release build), default offloads (vnet hdr, TSO)
#   sy_nooff  Switchyard daemon --no-offload (no vnet header: one read and one
#             write per MTU-sized packet)
#   kbr       kernel: two veths into a Linux bridge in a third netns
#             (the anchors' kernel_veth.sh bridge)
#   vde       vde_switch -t TAP_A -t TAP_B (the anchors' userspace_switch.sh vde)
#   hub       limit_hub.c with vnet headers + TSO (the anchors' ideal
#             forwarder, limit_hub.sh), compiled here with gcc -O2
#
# Tests (TESTS="tcp1500 ping udp64 tcp65520", default all):
#   tcp1500   single-stream iperf3 TCP, MTU 1500
#   ping      PINGS pings every PING_INT s: avg and p99 round trip
#   udp64     iperf3 -u -l 64 -b 0: packets/s received by iperf3 (and sent, and
#             delivered to the receiver's interface, i.e. forwarded by the
#             switch, whether or not the receiving socket kept them)
#   tcp65520  single-stream iperf3 TCP, MTU 65520 (Switchyard: a second network
#             made with -o com.docker.network.driver.mtu=65520; kernel bridge and
#             hub: links set to 65520; vde drops frames > 1518 bytes: skipped)
#   rr        opt-in (TESTS="... rr"; needs dnsmasq): UDP request/response
#             latency, the anchors' dns_latency.py in A querying a dnsmasq in B
#             through the switch (RR_COUNT=3000 sequential queries), median
#             and p99 in µs: what busy polling is for
# For the switch processes (sy, sy_nooff, vde, hub) the CPU the switch used
# during each test is reported too (% of one core; 100 = one core busy), and
# for every setup the machine's busy CPU (% of all cores: 100 = saturated).
#
# Output: stdout gets one anchor-style result line per setup
# (metric=median[min-max]), a table (metric x setup), the load average of
# every phase, and the ratios against the goals of issue 3. Per-run values go
# to stderr. Tee stdout into benches/results/ to keep it.
#
# Needs: root, /dev/net/tun, ip (iproute2), iperf3, ping, python3, gcc,
# dnsmasq (only for the opt-in rr test),
# vde_switch (vde2), perf (only with PERF_DIR), a release build of switchyard
# (SWITCHYARD_BIN, default ${CARGO_TARGET_DIR:-<repo>/target}/release/switchyard),
# and the anchor scripts: lib.sh and limit_hub.c from $ANCHORS (default
# <repo>/../shared/anchors).
#
# Knobs: RUNS=3 (median of RUNS), DUR=5 s per iperf3 run, PINGS=200,
# PING_INT=0.01, TESTS, SETUPS="sy sy_nooff kbr vde hub", ANCH_PREFIX=swyc
# (names of namespaces and TAPs; change it to run two copies at once),
# ANCH_NICE=-10, TCP_CC, HOLD=SECS (after setup, print the namespaces and pids
# and wait SECS before measuring, for experiments by hand), PERF_DIR=DIR
# (`perf record -e cpu-clock -g` of each Switchyard daemon during the first
# run of each test, into DIR; perf costs CPU, so do not compare numbers taken
# with it), and for experiments SY_ENV_TAG / SY_FLAGS_TAG / SY_BIN_TAG: a
# setup named sy_TAG is one more Switchyard daemon, started with the
# environment words in $SY_ENV_TAG, the daemon flags in $SY_FLAGS_TAG and the
# binary $SY_BIN_TAG (default: the same binary).
#
# Safety: traffic only between namespaces made here; every load is bounded
# (iperf3 -t, ping -c, perf -- sleep); the EXIT trap removes containers,
# daemons, namespaces, TAPs, processes and temp dirs, even on failure.

# shellcheck disable=SC2015  # "a && b || die": die when either step fails
HERE=$(cd "$(dirname "$0")" && pwd)
ANCHORS=${ANCHORS:-$HERE/../../shared/anchors}
[ -f "$ANCHORS/lib.sh" ] || { echo "ERROR: anchors not found in $ANCHORS (set ANCHORS=DIR)" >&2; exit 1; }
ANCHORS=$(cd "$ANCHORS" && pwd)
export ANCH_PREFIX=${ANCH_PREFIX:-swyc}
# shellcheck source=/dev/null
source "$ANCHORS/lib.sh"
# shellcheck source=lib_switchyard.sh
source "$HERE/lib_switchyard.sh"
trap 'sy_cleanup_all; anch_cleanup; sy_kill_leftovers' EXIT

SETUPS=${SETUPS:-"sy sy_nooff kbr vde hub"}
read -r -a SETUP_LIST <<<"$SETUPS"
need ping gcc
for s in "${SETUP_LIST[@]}"; do
    case $s in
    sy | sy_*) sy_find_bin ;;
    vde) need vde_switch ;;
    kbr | hub) ;;
    *) die "unknown setup $s (choose from: sy sy_nooff kbr vde hub, or sy_TAG with SY_ENV_TAG/SY_FLAGS_TAG)" ;;
    esac
done
[ -n "${PERF_DIR:-}" ] && { need perf; mkdir -p "$PERF_DIR" || die "PERF_DIR"; PERF_DIR=$(cd "$PERF_DIR" && pwd); }
[ -c /dev/net/tun ] || die "/dev/net/tun missing"

P=$ANCH_PREFIX PORT=5201
CLK_TCK=$(getconf CLK_TCK)
mk_tmpdir T
RAW=$T/raw
: >"$RAW"
declare -A NSA NSB IPB NSA9 NSB9 IPB9 SWPID IFB

# --- setups --------------------------------------------------------------

addr_pair() {   # NS_A TAP_A NS_B TAP_B NET(a.b.c): .1 on A, .2 on B, up
    ip -n "$1" addr add "$5.1/24" dev "$2" && ip -n "$1" link set "$2" up &&
        ip -n "$3" addr add "$5.2/24" dev "$4" && ip -n "$3" link set "$4" up || die "addressing $2/$4"
}

setup_kbr() {
    local a=$P-kbr-a b=$P-kbr-b br=$P-kbr-br
    ns_add "$a"; ns_add "$b"; ns_add "$br"
    ip -n "$br" link add br0 type bridge && ip -n "$br" link set br0 up || die bridge
    ip link add va netns "$a" type veth peer name pa netns "$br" || die veth
    ip link add vb netns "$b" type veth peer name pb netns "$br" || die veth
    for p in pa pb; do ip -n "$br" link set "$p" master br0; ip -n "$br" link set "$p" up; done
    addr_pair "$a" va "$b" vb 10.221.0
    NSA[kbr]=$a NSB[kbr]=$b IPB[kbr]=10.221.0.2 IFB[kbr]=vb
}
mtu_kbr() {
    ip -n "${NSA[kbr]}" link set va mtu "$1" && ip -n "${NSB[kbr]}" link set vb mtu "$1" &&
        ip -n "$P-kbr-br" link set pa mtu "$1" && ip -n "$P-kbr-br" link set pb mtu "$1"
}

# tap_pair NAME NS_SW TAP_A TAP_B NET: wait for the TAPs in NS_SW, move them
# into two fresh namespaces $P-NAME-a/-b and address them.
tap_pair() {
    local name=$1 sw=$2 ta=$3 tb=$4 net=$5 a=$P-$1-a b=$P-$1-b t
    ns_add "$a"; ns_add "$b"
    for t in "$ta" "$tb"; do
        for _ in $(seq 100); do ip -n "$sw" link show "$t" >/dev/null 2>&1 && break; sleep 0.1; done
        ip -n "$sw" link show "$t" >/dev/null 2>&1 || die "TAP $t not created by $name"
    done
    ip -n "$sw" link set "$ta" netns "$a" && ip -n "$sw" link set "$tb" netns "$b" || die "moving TAPs of $name"
    addr_pair "$a" "$ta" "$b" "$tb" "$net"
    NSA[$name]=$a NSB[$name]=$b IPB[$name]=$net.2 IFB[$name]=$tb
}

setup_vde() {
    local sw=$P-vde-sw vdir   # (not "d": mk_tmpdir has a local of that name)
    mk_tmpdir vdir
    ns_add "$sw"
    ip netns exec "$sw" vde_switch -s "$vdir/sw" -t "${P}vA" -t "${P}vB" -d -p "$vdir/pid" >"$vdir/log" 2>&1 ||
        die "vde_switch: $(cat "$vdir/log")"
    for _ in $(seq 50); do [ -s "$vdir/pid" ] && break; sleep 0.1; done
    [ -s "$vdir/pid" ] || die "vde_switch wrote no pid"
    reg_pid "$(cat "$vdir/pid")"
    SWPID[vde]=$(cat "$vdir/pid")
    tap_pair vde "$sw" "${P}vA" "${P}vB" 10.222.0
}
mtu_vde() { ip -n "${NSA[vde]}" link set "${P}vA" mtu "$1" && ip -n "${NSB[vde]}" link set "${P}vB" mtu "$1"; }

setup_hub() {
    local sw=$P-hub-sw hdir
    mk_tmpdir hdir
    gcc -O2 -o "$hdir/hub" "$ANCHORS/limit_hub.c" || die "cannot compile limit_hub.c"
    ns_add "$sw"
    bg_run "$sw" "$hdir/log" "$hdir/hub" "${P}hA" "${P}hB" vnet
    SWPID[hub]=$BG_PID
    tap_pair hub "$sw" "${P}hA" "${P}hB" 10.223.0
}
mtu_hub() { ip -n "${NSA[hub]}" link set "${P}hA" mtu "$1" && ip -n "${NSB[hub]}" link set "${P}hB" mtu "$1"; }

setup_sy() {   # NAME [daemon flags]
    local name=$1 sock pid ip; shift
    sy_daemon sock pid "$P-$name-d" "$@"
    SWPID[$name]=$pid
    sy "$sock" network create n1500 --subnet 10.224.0.0/24 >/dev/null || die "network create"
    sy "$sock" network create n65520 --subnet 10.225.0.0/24 -o com.docker.network.driver.mtu=65520 >/dev/null ||
        die "network create (mtu 65520)"
    sy_container ip "$sock" a1 n1500 "$P-$name-a1"; NSA[$name]=$P-$name-a1
    sy_container ip "$sock" b1 n1500 "$P-$name-b1"; NSB[$name]=$P-$name-b1 IPB[$name]=$ip IFB[$name]=eth0
    sy_container ip "$sock" a9 n65520 "$P-$name-a9"; NSA9[$name]=$P-$name-a9
    sy_container ip "$sock" b9 n65520 "$P-$name-b9"; NSB9[$name]=$P-$name-b9 IPB9[$name]=$ip
}

for s in "${SETUP_LIST[@]}"; do
    log "setting up $s"
    case $s in
    sy) setup_sy sy ;;
    sy_nooff) setup_sy sy_nooff --no-offload ;;
    sy_*)
        sy_variant "${s#sy_}"
        setup_sy "$s" "${SY_VARIANT_FLAGS[@]}"
        sy_variant_end ;;
    *) "setup_$s" ;;
    esac
    if [ -z "${NSA9[$s]:-}" ]; then NSA9[$s]=${NSA[$s]} NSB9[$s]=${NSB[$s]} IPB9[$s]=${IPB[$s]}; fi
    ok=0
    for _ in 1 2 3; do nsx "${NSA[$s]}" ping -c 3 -i 0.2 -W 1 -q "${IPB[$s]}" >/dev/null && { ok=1; break; }; done
    [ $ok = 1 ] || die "no connectivity through $s"
    iperf_server "${NSB[$s]}" "${IPB[$s]}" $PORT
    [ "${NSB9[$s]}" != "${NSB[$s]}" ] && iperf_server "${NSB9[$s]}" "${IPB9[$s]}" $PORT
done

# --- measuring -----------------------------------------------------------

rec() { echo "$*" >>"$RAW"; }   # setup metric value
rx_packets() { nsx "${NSB[$1]}" cat "/sys/class/net/${IFB[$1]}/statistics/rx_packets" 2>/dev/null || echo 0; }
now_ns() { date +%s%N; }

# measure S TEST RUN: one run of TEST through setup S, recorded in $RAW
measure() {
    local s=$1 test=$2 r=$3 c0 c1 t0 t1 a b c n0 b0 tt0 b1 tt1 perf_pid=
    if [ -n "${PERF_DIR:-}" ] && [ "$r" = 0 ] && [[ $s == sy* ]]; then
        bg_run - "$PERF_DIR/$s-$test.log" perf record -e cpu-clock -g -p "${SWPID[$s]}" \
            -o "$PERF_DIR/$s-$test.data" -- sleep "$DUR"
        perf_pid=$BG_PID
    fi
    n0=$(wc -l <"$RAW")
    c0=$([ -n "${SWPID[$s]:-}" ] && cpu_ticks "${SWPID[$s]}")
    read -r b0 tt0 < <(cpu_all)
    t0=$(now_ns)
    case $test in
    tcp1500) a=$(iperf_tcp "${NSA[$s]}" "${IPB[$s]}" $PORT); rec "$s" tcp1500 "$a" ;;
    tcp65520) a=$(iperf_tcp "${NSA9[$s]}" "${IPB9[$s]}" $PORT); rec "$s" tcp65520 "$a" ;;
    ping)
        read -r a b c < <(ping_run "${NSA[$s]}" "${IPB[$s]}")
        rec "$s" ping_avg "$a"; rec "$s" ping_p99 "$b"; rec "$s" ping_loss "$c" ;;
    rr)
        read -r a b c < <(nsx "${NSA[$s]}" timeout 20 python3 "$ANCHORS/dns_latency.py" "${IPB[$s]}" 5353 "${RR_COUNT:-3000}" web1)
        rec "$s" rr_median "${a:-nan}"; rec "$s" rr_p99 "${b:-nan}" ;;
    udp64)
        c=$(rx_packets "$s")
        read -r a b < <(iperf_udp64 "${NSA[$s]}" "${IPB[$s]}" $PORT)
        rec "$s" udp64 "$a"; rec "$s" udp64_sent "$b"
        # frames that reached the receiver's interface (what the switch
        # delivered), whether or not the receiving socket kept them
        rec "$s" udp64_fwd "$(python3 -c "print('%.1f' % (($(rx_packets "$s") - $c) / $DUR / 1e3))")" ;;
    esac
    t1=$(now_ns)
    read -r b1 tt1 < <(cpu_all)
    rec "$s" "cpuall_$test" "$(python3 -c "print('%.0f' % (100.0*($b1-$b0)/max(1,$tt1-$tt0)))")"
    if [ -n "${SWPID[$s]:-}" ]; then
        c1=$(cpu_ticks "${SWPID[$s]}")
        rec "$s" "cpu_$test" "$(python3 -c "print('%.0f' % (100.0*($c1-$c0)/$CLK_TCK/(($t1-$t0)/1e9)))")"
    fi
    log "$test run $r $s: $(tail -n "$(($(wc -l <"$RAW") - n0))" "$RAW" | cut -d' ' -f2- | tr '\n' ' ')"
    [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null
    return 0
}

# phase TEST SETUP...: RUNS rounds over the setups, rotated each round
phase() {
    local test=$1; shift
    local list=("$@") n=$# r i l0
    [ $n -gt 0 ] || return 0
    l0=$(loadavg)
    for ((r = 0; r < RUNS; r++)); do
        for ((i = 0; i < n; i++)); do
            measure "${list[(r + i) % n]}" "$test" "$r"
            [ "$test" = ping ] || sleep 0.5
        done
    done
    rec _ "load_$test" "$l0->$(loadavg)"
}

if [ "${HOLD:-0}" != 0 ]; then
    for s in "${SETUP_LIST[@]}"; do
        log "HOLD: $s: client netns ${NSA[$s]} -> ${IPB[$s]} (netns ${NSB[$s]}), MTU 65520: ${NSA9[$s]} -> ${IPB9[$s]}, switch pid ${SWPID[$s]:--}"
    done
    log "HOLD: sleeping ${HOLD}s (iperf3 servers listen on :$PORT); Ctrl-C cleans up"
    sleep "$HOLD" &
    reg_pid $!
    wait $!
fi

L_START=$(loadavg)
log "measuring: setups ${SETUP_LIST[*]}, RUNS=$RUNS DUR=$DUR, load1 $L_START"
want tcp1500 && phase tcp1500 "${SETUP_LIST[@]}"
if [[ " ${TESTS:-} " == *" rr "* ]]; then
    need dnsmasq
    mk_tmpdir RRD
    echo "10.9.9.9 web1" >"$RRD/hosts"
    for s in "${SETUP_LIST[@]}"; do
        bg_run "${NSB[$s]}" "$RRD/$s.log" dnsmasq -k --no-resolv --no-hosts --addn-hosts="$RRD/hosts" \
            --listen-address="${IPB[$s]}" --bind-interfaces --port=5353 --user=root \
            --pid-file="$RRD/$s.pid" --log-facility=-
        wait_port "${NSB[$s]}" udp 5353 || die "dnsmasq for rr in $s: $(cat "$RRD/$s.log")"
    done
    phase rr "${SETUP_LIST[@]}"
fi
want ping && phase ping "${SETUP_LIST[@]}"
want udp64 && phase udp64 "${SETUP_LIST[@]}"
if want tcp65520; then
    big=()
    for s in "${SETUP_LIST[@]}"; do
        if declare -F "mtu_$s" >/dev/null; then "mtu_$s" 65520 || { rec "$s" tcp65520_note mtu_refused; continue; }; fi
        # a big ping must cross, or large frames are being dropped/truncated
        if nsx "${NSA9[$s]}" ping -c 2 -i 0.2 -W 1 -q -M "do" -s 65000 "${IPB9[$s]}" >/dev/null 2>&1; then
            big+=("$s")
        else
            rec "$s" tcp65520_note jumbo_frames_dropped
        fi
    done
    phase tcp65520 "${big[@]}"
fi

# --- report --------------------------------------------------------------
python3 - "$RAW" "$L_START" "$(loadavg)" "${SETUP_LIST[@]}" <<'EOF'
import sys, statistics, math
raw, l_start, l_end, setups = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
vals, notes, loads = {}, {}, {}
for line in open(raw):
    s, m, v = line.split(None, 2)
    v = v.strip()
    if s == "_":
        loads[m[5:]] = v; continue
    if m.endswith("_note"):
        notes[(s, m[:-5])] = v; continue
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
        return notes.get((s, m), "-")
    return "%s[%s-%s]" % (f(statistics.median(v)), f(min(v)), f(max(v))) if len(v) > 1 else f(v[0])

rows = [("tcp1500", "tcp1500 Gbit/s"), ("tcp65520", "tcp65520 Gbit/s"),
        ("ping_avg", "ping avg ms"), ("ping_p99", "ping p99 ms"),
        ("rr_median", "udp req/resp median us"), ("rr_p99", "udp req/resp p99 us"),
        ("udp64", "udp64 rx kpps"), ("udp64_sent", "udp64 sent kpps"),
        ("udp64_fwd", "udp64 delivered to rx if kpps"),
        ("cpu_tcp1500", "switch CPU% tcp1500"), ("cpu_tcp65520", "switch CPU% tcp65520"),
        ("cpu_ping", "switch CPU% ping"), ("cpu_udp64", "switch CPU% udp64"),
        ("cpu_rr", "switch CPU% req/resp"),
        ("cpuall_tcp1500", "machine CPU% tcp1500"), ("cpuall_udp64", "machine CPU% udp64")]
rows = [r for r in rows if any((s, r[0]) in vals or (s, r[0]) in notes for s in setups)]

# anchor-style lines
for s in setups:
    fields = []
    for m, _ in rows:
        unit = {"tcp1500": "Gbps", "tcp65520": "Gbps", "ping_avg": "ms", "ping_p99": "ms",
                "udp64": "kpps", "udp64_sent": "kpps", "udp64_fwd": "kpps",
                "rr_median": "us", "rr_p99": "us"}.get(m, "%")
        v = vals.get((s, m))
        if v:
            fields.append("%s=%s%s[%s-%s]" % (m, f(statistics.median(v)), unit, f(min(v)), f(max(v))))
        elif (s, m) in notes:
            fields.append("%s=%s" % (m, notes[(s, m)]))
    print("compare_%s %s" % (s, " ".join(fields)))
print()

w0 = max(len(r[1]) for r in rows) if rows else 10
w = max([len(s) for s in setups] + [len(cell(s, m)) for s in setups for m, _ in rows] + [8])
print("%-*s  %s" % (w0, "metric (median[min-max])", "  ".join("%-*s" % (w, s) for s in setups)))
for m, label in rows:
    print("%-*s  %s" % (w0, label, "  ".join("%-*s" % (w, cell(s, m)) for s in setups)))
print("load1: start %s, end %s; per phase: %s" % (l_start, l_end,
      ", ".join("%s %s" % (k, v) for k, v in loads.items())))
print()

goals = [  # (metric, ours, peer, op, target, text)
    ("tcp1500", "kbr", ">=", 0.5, "TCP MTU 1500 >= 0.5x kernel bridge"),
    ("tcp1500", "hub", ">=", 0.85, "TCP MTU 1500 >= 0.85x ideal forwarder"),
    ("tcp1500", "vde", ">=", 10, "TCP MTU 1500 ~10x vde_switch (follows from the hub goal)"),
    ("tcp65520", "hub", ">=", 0.9, "TCP MTU 65520 >= 0.9x ideal forwarder"),
    ("ping_avg", "kbr", "<=", 2.0, "ping avg <= 2x kernel bridge"),
    ("udp64", "kbr", ">=", 0.8, "UDP 64-byte rx pkt/s >= 0.8x kernel bridge"),
]
print("goals (ratio of medians from this run):")
for ours in [s for s in setups if s.startswith("sy")]:
    for m, peer, op, target, text in goals:
        a, b = med(ours, m), med(peer, m)
        if a is None or b is None or b == 0:
            continue
        r = a / b
        ok = r >= target if op == ">=" else r <= target
        verdict = ("MET" if ok else "MISSED") if ours == "sy" else ("met" if ok else "missed") + " (info)"
        print("  %-9s %-58s %s/%s = %6.3g  (%s %g)  %s" % (ours, text, ours, peer, r, op, target, verdict))
EOF
