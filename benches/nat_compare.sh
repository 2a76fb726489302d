#!/usr/bin/env bash
# Container <-> outside through a NAT: Switchyard side by side with the
# rootless NATs and the kernel, in ONE run, interleaved run by run (round r
# measures every setup once, in an order rotated each round), so a change of
# load on a shared machine hits every column alike.
#
#   sy      Switchyard (release build): the daemon in its own netns NS_D, an
#           "outside" netns NS_O joined to it by a veth (NS_D 10.204.0.1/24,
#           NS_O 10.204.0.2/24). Containers made with the CLI:
#           `run --name c1 --network natb -d -p 8202:5202 -p 8203:5203 --
#           iperf3 -s -p 5202` (one network per MTU; 65520 =
#           `-o com.docker.network.driver.mtu=65520`), commands in them with
#           `switchyard exec c1 -- ...`. A build whose `run` refuses -p with
#           "not supported" is skipped with one line; the other rows still
#           come out.
#   slirp   slirp4netns, exactly as the anchor nat_rootless.sh: a "host" netns
#           NS_H (loopback + a dead-end veth), the container netns NS_C, port
#           forwards by the API's add_hostfwd (on 127.0.0.1 and on NS_H's
#           address towards NS_O). slirp's --mtu is fixed at start: one
#           slirp4netns (and container) per MTU.
#   pasta   pasta, exactly as the anchor (--runas 0, -t 8202:5202 -t
#           8203:5203 -T 5201, tap0 MTU set after start).
#   nft     the kernel ceiling: container netns --veth-- "host" netns that
#           routes and masquerades with nftables --veth-- outside netns;
#           published ports = nftables dnat (prerouting for the outside
#           netns, output + route_localnet + masquerade of 127/8 for the
#           host's loopback, as Docker does without its userland proxy).
#
# Where the "outside" server is: for sy and nft a separate netns behind the
# NAT. slirp4netns and pasta can reach only their host's own addresses
# (everything else would leave the machine), so as in the anchor their
# outside server listens on NS_H's loopback, reached from the container via
# the gateway address 10.0.2.2 (the tools map it to the host's 127.0.0.1).
#
# Tests (TESTS, default all; each at every MTU in MTUS="1500 65520"):
#   up, down         container -> outside iperf3 server (down = -R)
#   fwd_in, fwd_out  host's loopback (127.0.0.1 in NS_H / NS_D) -> published
#                    port -> iperf3 server in the container (fwd_out = -R);
#                    pasta serves this by splice(2), its fastest path
#   fwdo_in, fwdo_out  the same from the outside netns through a veth, to the
#                    host's address on it (pasta and slirp: the tap path)
#   conn_out         connrate.c (built here with gcc -O2): for CONN_DUR s,
#                    one connection after the other, connect / send 1 byte /
#                    receive 1 byte / close, container -> outside echo server:
#                    connections/s, p99 of connect(2) and p99 of connect + the
#                    1-byte round trip ("txn": through a proxy, connect can
#                    complete at the proxy before the far end was reached)
#   conn_in, conn_in_o  the same, host's loopback / outside netns -> published
#                    port -> echo server in the container
# The CPU the NAT process used during each test (% of one core: slirp4netns,
# pasta, the Switchyard daemon with all its threads; the kernel NAT has no
# process) and the machine's busy CPU (% of all cores) are reported too.
# Every link made here gets the test's MTU (the veths to the outside netns,
# nft's veths, pasta's tap0); loopback stays at the kernel's 65536.
#
# Output: stdout gets a header (date, knobs, versions), one anchor-style line
# per setup (metric=median[min-max]), a table (metric x setup), the load
# average of every phase, and the ratios against the goals (sy: outbound and
# inbound TCP >= 3x slirp4netns at MTU 1500 and >= 1.5x at 65520; published
# port from the host's loopback >= 0.8x pasta's splice path; connection setup
# p99 <= pasta's). Per-run values go to stderr. Tee stdout into
# benches/results/ to keep it.
#
# Needs: root, /dev/net/tun, ip (iproute2), iperf3, python3, gcc,
# slirp4netns, pasta (passt), nft (nftables), a release build of switchyard
# (only for sy: SWITCHYARD_BIN, default
# ${CARGO_TARGET_DIR:-<repo>/target}/release/switchyard), and the anchors'
# lib.sh from $ANCHORS (default <repo>/../shared/anchors).
#
# Knobs: RUNS=3 (median of RUNS), DUR=5 s per iperf3 run, CONN_DUR=3 s per
# connrate run, TESTS, MTUS="1500 65520", SETUPS="sy slirp pasta nft",
# ANCH_PREFIX=swyn (names of namespaces; change it to run two copies at
# once), ANCH_NICE=-10, TCP_CC (congestion control in every namespace made
# here; default the host's: the 2023 pasta is erratic under bbr when the
# container sends, see the anchors' README), HOLD=SECS (after setup, print
# the namespaces and pids and wait SECS before measuring).
#
# Safety: traffic only between namespaces made here (no namespace has a way
# off the machine: the rootless NATs' host side is itself a private netns
# whose only non-loopback links are a dead-end veth and the veth to the
# outside netns; the Switchyard daemon's DNS upstream is a dead local port);
# every load is bounded (iperf3 -t, connrate's duration, timeout around
# both, servers with a lifetime); the EXIT trap removes containers, daemon,
# NAT processes, namespaces and temp dirs, even on failure or Ctrl-C.

# shellcheck disable=SC2015  # "a && b || die": die when either step fails
HERE=$(cd "$(dirname "$0")" && pwd)
ANCHORS=${ANCHORS:-$HERE/../../shared/anchors}
[ -f "$ANCHORS/lib.sh" ] || { echo "ERROR: anchors not found in $ANCHORS (set ANCHORS=DIR)" >&2; exit 1; }
ANCHORS=$(cd "$ANCHORS" && pwd)
export ANCH_PREFIX=${ANCH_PREFIX:-swyn}
# shellcheck source=/dev/null
source "$ANCHORS/lib.sh"
# shellcheck source=lib_switchyard.sh
source "$HERE/lib_switchyard.sh"
trap 'sy_cleanup_all; anch_cleanup; sy_kill_leftovers' EXIT

SETUPS=${SETUPS:-"sy slirp pasta nft"}
MTUS=${MTUS:-"1500 65520"}
CONN_DUR=${CONN_DUR:-3}
ALL_TESTS="up down fwd_in fwd_out fwdo_in fwdo_out conn_out conn_in conn_in_o"
read -r -a SETUP_LIST <<<"$SETUPS"
read -r -a MTU_LIST <<<"$MTUS"
need gcc timeout
for s in "${SETUP_LIST[@]}"; do
    case $s in
    sy) sy_find_bin ;;
    slirp) need slirp4netns ;;
    pasta) need pasta ;;
    nft) need nft ;;
    *) die "unknown setup $s (choose from: sy slirp pasta nft)" ;;
    esac
done
for m in "${MTU_LIST[@]}"; do
    [[ $m =~ ^[0-9]+$ ]] && [ "$m" -ge 1280 ] && [ "$m" -le 65520 ] || die "MTUS: $m is not an MTU from 1280 to 65520"
done
for t in ${TESTS:-}; do
    [[ " $ALL_TESTS " == *" $t "* ]] || die "unknown test $t (choose from: $ALL_TESTS)"
done
[[ $CONN_DUR =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "CONN_DUR=$CONN_DUR: want seconds"
[ -c /dev/net/tun ] || die "/dev/net/tun missing"

P=$ANCH_PREFIX
CLK_TCK=$(getconf CLK_TCK)
OUT_IPERF=5201 OUT_CONN=5204   # outside servers
C_IPERF=5202 C_CONN=5203       # servers in the container
mk_tmpdir T
chmod 755 "$T"                 # Switchyard's containers run connrate from here
RAW=$T/raw
: >"$RAW"
CR=$T/connrate
gcc -O2 -o "$CR" "$HERE/connrate.c" || die "cannot compile benches/connrate.c"

# Per setup: HNS (the NAT's "host" netns: loopback clients run here), ONS
# (outside netns), PUBO (the host's address on the veth to ONS), ODST (where
# the container finds the outside servers). Per "setup:mtu": CNS (container
# netns name), CNAME (Switchyard container), FWDP / CONNP (published ports of
# the container's iperf3 / echo server), NATPID, CIF (container interface).
declare -A HNS ONS PUBO ODST CNS CNAME FWDP CONNP NATPID CIF OLINK
{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) benches/nat_compare.sh RUNS=$RUNS DUR=$DUR CONN_DUR=$CONN_DUR" \
        "MTUS='$MTUS' SETUPS='$SETUPS' TESTS='${TESTS:-all}' ANCH_NICE=${ANCH_NICE:-} TCP_CC=${TCP_CC:-host}"
    [ -x "$ANCHORS/versions.sh" ] && "$ANCHORS/versions.sh" | tr -d '\n'
    echo " nftables=$(dpkg-query -W -f='${Version}' nftables 2>/dev/null || echo none)" \
        "switchyard=$([ -n "${SY_BIN:-}" ] && "$SY_BIN" --version 2>/dev/null | tr ' ' '-' || echo -)"
    echo "outside server: sy, nft: a separate netns behind the NAT; slirp, pasta: the host netns's loopback" \
        "via the gateway 10.0.2.2 (the only outside these tools reach without leaving the machine)"
}

# --- setups --------------------------------------------------------------

# outside_veth SETUP HOST_NS NET(a.b.c): a netns $P-SETUP-o joined to
# HOST_NS by a veth (HOST_NS .1, outside .2)
outside_veth() {
    local s=$1 h=$2 net=$3 o=$P-$1-o
    ns_add "$o"
    ip link add "${s}o0" netns "$h" type veth peer name eth0 netns "$o" || die "veth $h-$o"
    ip -n "$h" addr add "$net.1/24" dev "${s}o0" && ip -n "$h" link set "${s}o0" up &&
        ip -n "$o" addr add "$net.2/24" dev eth0 && ip -n "$o" link set eth0 up || die "addressing $h-$o"
    ONS[$s]=$o PUBO[$s]=$net.1 OLINK[$s]="$h ${s}o0 $o eth0"
}

# rootless_host SETUP: the anchor's "host" netns (loopback + a dead-end
# veth, default route into it) plus the veth to the outside netns
rootless_host() {
    local s=$1 h=$P-$1-h
    ns_add "$h"
    ip -n "$h" link add hd0 type veth peer name hd1 &&
        ip -n "$h" addr add 10.203.0.1/24 dev hd0 &&
        ip -n "$h" link set hd1 up && ip -n "$h" link set hd0 up &&
        ip -n "$h" route add default via 10.203.0.254 || die "host netns $h"
    HNS[$s]=$h ODST[$s]=10.0.2.2
}

# wait_tap0 NS: until slirp/pasta has configured 10.0.2.100 on tap0
wait_tap0() {
    for _ in $(seq 50); do ip -n "$1" -4 addr show tap0 2>/dev/null | grep -q 10.0.2.100 && return 0; sleep 0.1; done
    die "tap0 not configured in $1"
}

setup_slirp() {
    local h i=0 m c sdir
    rootless_host slirp; h=${HNS[slirp]}
    outside_veth slirp "$h" 10.210.0
    for m in "${MTU_LIST[@]}"; do
        c=$P-slirp-c$m
        ns_add "$c"
        mk_tmpdir sdir
        bg_run "$h" "$sdir/slirp.log" slirp4netns --configure --mtu="$m" \
            --netns-type=path --api-socket "$sdir/api.sock" "/run/netns/$c" tap0
        NATPID[slirp:$m]=$BG_PID
        for _ in $(seq 50); do [ -S "$sdir/api.sock" ] && break; sleep 0.1; done
        [ -S "$sdir/api.sock" ] || die "slirp4netns did not start: $(cat "$sdir/slirp.log")"
        FWDP[slirp:$m]=$((8202 + 10 * i)) CONNP[slirp:$m]=$((8203 + 10 * i))
        python3 - "$sdir/api.sock" "${PUBO[slirp]}" "${FWDP[slirp:$m]}" $C_IPERF "${CONNP[slirp:$m]}" $C_CONN \
            <<'EOF' >"$sdir/api.out" 2>&1 || die "slirp4netns add_hostfwd failed: $(cat "$sdir/api.out")"
import socket, json, sys
sock, outside = sys.argv[1], sys.argv[2]
pairs = [(int(sys.argv[3]), int(sys.argv[4])), (int(sys.argv[5]), int(sys.argv[6]))]
for addr in ("127.0.0.1", outside):
    for hp, gp in pairs:
        s = socket.socket(socket.AF_UNIX); s.connect(sock)
        s.sendall(json.dumps({"execute": "add_hostfwd", "arguments": {"proto": "tcp",
            "host_addr": addr, "host_port": hp, "guest_addr": "10.0.2.100",
            "guest_port": gp}}).encode())
        s.shutdown(socket.SHUT_WR); r = s.recv(4096).decode(); print(r)
        if '"return"' not in r: sys.exit(1)
EOF
        wait_tap0 "$c"
        CNS[slirp:$m]=$c CIF[slirp:$m]=tap0
        i=$((i + 1))
    done
}
mtu_slirp() { :; }   # one slirp4netns per MTU

setup_pasta() {
    local h c=$P-pasta-c pdir m
    rootless_host pasta; h=${HNS[pasta]}
    outside_veth pasta "$h" 10.211.0
    ns_add "$c"
    mk_tmpdir pdir
    # --runas 0: this 2023 pasta otherwise drops to "nobody" when started as
    # root and then cannot join a root-owned netns (the anchor's note).
    ip netns exec "$h" pasta --runas 0 --config-net -4 -a 10.0.2.100 -n 24 -g 10.0.2.2 -I tap0 \
        -t 8202:$C_IPERF -t 8203:$C_CONN -u none -T 5201 -U none -P "$pdir/pid" --netns "$c" \
        >"$pdir/pasta.log" 2>&1 || die "pasta: $(grep -v syslog "$pdir/pasta.log")"
    for _ in $(seq 30); do [ -s "$pdir/pid" ] && break; sleep 0.1; done
    [ -s "$pdir/pid" ] || die "pasta wrote no pid file"
    reg_pid "$(cat "$pdir/pid")"
    wait_tap0 "$c"
    for m in "${MTU_LIST[@]}"; do
        CNS[pasta:$m]=$c CIF[pasta:$m]=tap0 FWDP[pasta:$m]=8202 CONNP[pasta:$m]=8203 NATPID[pasta:$m]=$(cat "$pdir/pid")
    done
}
mtu_pasta() { ip -n "$P-pasta-c" link set tap0 mtu "$1"; }

setup_nft() {
    local h=$P-nft-h c=$P-nft-c m
    ns_add "$h"; ns_add "$c"
    ip link add eth0 netns "$c" type veth peer name nftc0 netns "$h" || die "veth $c-$h"
    ip -n "$c" addr add 10.207.0.2/24 dev eth0 && ip -n "$c" link set eth0 up &&
        ip -n "$c" route add default via 10.207.0.1 &&
        ip -n "$h" addr add 10.207.0.1/24 dev nftc0 && ip -n "$h" link set nftc0 up || die "addressing $c-$h"
    outside_veth nft "$h" 10.208.0
    ip netns exec "$h" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1 \
        net.ipv4.conf.nftc0.route_localnet=1 || die "sysctl in $h"
    ip netns exec "$h" nft -f - <<EOF || die "nft rules in $h"
table ip swyn_nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "nfto0" tcp dport 8202 dnat to 10.207.0.2:$C_IPERF
        iifname "nfto0" tcp dport 8203 dnat to 10.207.0.2:$C_CONN
    }
    chain output {
        type nat hook output priority -100; policy accept;
        ip daddr 127.0.0.1 tcp dport 8202 dnat to 10.207.0.2:$C_IPERF
        ip daddr 127.0.0.1 tcp dport 8203 dnat to 10.207.0.2:$C_CONN
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "nfto0" masquerade
        oifname "nftc0" ip saddr 127.0.0.0/8 masquerade
    }
}
EOF
    HNS[nft]=$h ODST[nft]=10.208.0.2
    for m in "${MTU_LIST[@]}"; do CNS[nft:$m]=$c CIF[nft:$m]=eth0 FWDP[nft:$m]=8202 CONNP[nft:$m]=8203; done
}
mtu_nft() { ip -n "$P-nft-c" link set eth0 mtu "$1" && ip -n "$P-nft-h" link set nftc0 mtu "$1"; }

SY_SOCK='' SY_DPID=''
# setup_sy: returns 1 (after saying why on stdout) when this build cannot
# publish ports; dies on any other failure.
setup_sy() {
    local d=$P-sy-d i=0 m net cname out ip flags
    sy_daemon SY_SOCK SY_DPID "$d"
    HNS[sy]=$d ODST[sy]=10.204.0.2
    outside_veth sy "$d" 10.204.0
    for m in "${MTU_LIST[@]}"; do
        net=natb flags=()
        [ "$m" != 1500 ] && net=natb$m flags=(-o "com.docker.network.driver.mtu=$m")
        sy "$SY_SOCK" network create "$net" --subnet "10.205.$i.0/24" "${flags[@]}" >/dev/null ||
            die "switchyard network create $net (mtu $m)"
        cname=c$((i + 1))
        FWDP[sy:$m]=$((8202 + 10 * i)) CONNP[sy:$m]=$((8203 + 10 * i))
        if ! out=$(sy "$SY_SOCK" run --name "$cname" --network "$net" -d -p "${FWDP[sy:$m]}:$C_IPERF" \
            -p "${CONNP[sy:$m]}:$C_CONN" -- iperf3 -s -p $C_IPERF 2>&1); then
            if [[ $out == *"not supported"* ]]; then
                echo "sy: skipped (this build has no published ports)"
                log "sy: switchyard run said: $out"
                return 1
            fi
            die "switchyard run $cname: $out"
        fi
        sy_adopt_netns ip "$SY_SOCK" "$cname" "$P-sy-$cname"
        CNS[sy:$m]=$P-sy-$cname CNAME[sy:$m]=$cname NATPID[sy:$m]=$SY_DPID
        CIF[sy:$m]=$(ip -n "$P-sy-$cname" -o -4 addr show | awk -v ip="$ip" 'index($4, ip "/") == 1 {print $2; exit}')
        i=$((i + 1))
    done
}
mtu_sy() { :; }   # one network per MTU

# at SETUP MTU WHERE cmd...: run cmd in the container (c), the NAT's host
# netns (h) or the outside netns (o). Switchyard's containers are entered
# with `switchyard exec`, as a user would.
at() {
    local s=$1 m=$2 where=$3; shift 3
    case $where in
    c) if [ "$s" = sy ]; then sy "$SY_SOCK" exec "${CNAME[$s:$m]}" -- "$@"; else nsx "${CNS[$s:$m]}" "$@"; fi ;;
    h) nsx "${HNS[$s]}" "$@" ;;
    o) nsx "${ONS[$s]}" "$@" ;;
    esac
}

# set_mtu SETUP MTU: the test's MTU on every link of SETUP made here
set_mtu() {
    local s=$1 m=$2 h hl o ol
    read -r h hl o ol <<<"${OLINK[$s]}"
    ip -n "$h" link set "$hl" mtu "$m" && ip -n "$o" link set "$ol" mtu "$m" && "mtu_$s" "$m" ||
        die "cannot set MTU $m on $s's links"
}

# start_servers SETUP: the outside iperf3 and echo servers, and (except for
# Switchyard, whose container runs iperf3 as its command) the container's
ACTIVE=()
start_servers() {
    local s=$1 m osns obind
    if [ "${ODST[$s]}" = 10.0.2.2 ]; then osns=${HNS[$s]} obind=127.0.0.1; else osns=${ONS[$s]} obind=${ODST[$s]}; fi
    iperf_server "$osns" "$obind" $OUT_IPERF
    bg_run "$osns" "$T/echo-$s-out.log" "$CR" serve $OUT_CONN "$obind" 7200
    wait_port "$osns" tcp $OUT_CONN || die "echo server in $osns: $(cat "$T/echo-$s-out.log")"
    for m in "${MTU_LIST[@]}"; do
        if [ "$s" = sy ]; then
            wait_port "${CNS[$s:$m]}" tcp $C_IPERF || die "iperf3 -s in Switchyard container ${CNAME[$s:$m]} did not start"
            bg_run - "$T/echo-$s-$m.log" env SWITCHYARD_SOCKET="$SY_SOCK" "$SY_BIN" exec "${CNAME[$s:$m]}" -- \
                "$CR" serve $C_CONN 0.0.0.0 7200
        elif [ "$m" = "${MTU_LIST[0]}" ] || [ "${CNS[$s:$m]}" != "${CNS[$s:${MTU_LIST[0]}]}" ]; then
            iperf_server "${CNS[$s:$m]}" "" $C_IPERF
            bg_run "${CNS[$s:$m]}" "$T/echo-$s-$m.log" "$CR" serve $C_CONN 0.0.0.0 7200
        else
            continue
        fi
        wait_port "${CNS[$s:$m]}" tcp $C_CONN || die "echo server in ${CNS[$s:$m]}: $(cat "$T/echo-$s-$m.log")"
    done
}

# check_paths SETUP: a few connections over each path at each MTU
check_paths() {
    local s=$1 m where dst port out
    for m in "${MTU_LIST[@]}"; do
        for where in c h o; do
            case $where in
            c) dst=${ODST[$s]} port=$OUT_CONN ;;
            h) dst=127.0.0.1 port=${CONNP[$s:$m]} ;;
            o) dst=${PUBO[$s]} port=${CONNP[$s:$m]} ;;
            esac
            out=$(at "$s" "$m" "$where" timeout 10 "$CR" client "$dst" "$port" 2 5 2>&1) ||
                { echo "$s (MTU $m, from $where to $dst:$port): $out"; return 1; }
        done
    done
}

for s in "${SETUP_LIST[@]}"; do
    log "setting up $s"
    if ! "setup_$s"; then continue; fi
    start_servers "$s"
    if ! why=$(check_paths "$s"); then
        [ "$s" = sy ] || die "no connection through $why"
        echo "sy: skipped (no connection through it: $why)"
        continue
    fi
    ACTIVE+=("$s")
done
[ ${#ACTIVE[@]} -gt 0 ] || die "no setup left to measure"

# --- measuring -----------------------------------------------------------

rec() { echo "$*" >>"$RAW"; }   # setup metric value
now_ns() { date +%s%N; }

# tcp SETUP MTU WHERE DST PORT [iperf3 args]: one iperf3 run, receiver Gbit/s
tcp() {
    local s=$1 m=$2 where=$3 dst=$4 port=$5 out; shift 5
    out=$(at "$s" "$m" "$where" timeout $((DUR + 20)) iperf3 -c "$dst" -p "$port" -t "$DUR" -J "$@" 2>&1)
    printf '%s' "$out" | python3 -c '
import json,sys
try:
    print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))
except Exception:
    print("nan")'
    dbg "tcp $s/$m $where->$dst:$port $*: $(printf '%s' "$out" | grep -m1 -o '"error":.*' || true)"
}

# conn SETUP MTU WHERE DST PORT TEST: one connrate run, recorded
conn() {
    local s=$1 m=$2 where=$3 dst=$4 port=$5 test=$6 out kv
    local -A f=([rate]=nan [connect_p99]=nan [txn_p99]=nan [errors]=nan)
    out=$(at "$s" "$m" "$where" timeout "$(python3 -c "print(int($CONN_DUR) + 15)")" "$CR" client "$dst" "$port" "$CONN_DUR" 2>>"$T/conn.err")
    for kv in $out; do f[${kv%%=*}]=${kv#*=}; done
    rec "$s" "${test}_${m}_rate" "${f[rate]}"
    rec "$s" "${test}_${m}_p99" "${f[connect_p99]}"
    rec "$s" "${test}_${m}_txp99" "${f[txn_p99]}"
    rec "$s" "${test}_${m}_err" "${f[errors]}"
}

# measure SETUP TEST MTU RUN: one run of TEST through SETUP, recorded in $RAW
measure() {
    local s=$1 test=$2 m=$3 r=$4 c0 c1 t0 t1 b0 tt0 b1 tt1 n0 pid=${NATPID[$1:$3]:-}
    local fp=${FWDP[$s:$m]} cp=${CONNP[$s:$m]} po=${PUBO[$s]} od=${ODST[$s]}
    n0=$(wc -l <"$RAW")
    c0=$([ -n "$pid" ] && cpu_ticks "$pid")
    read -r b0 tt0 < <(cpu_all)
    t0=$(now_ns)
    case $test in
    up) rec "$s" "up_$m" "$(tcp "$s" "$m" c "$od" $OUT_IPERF)" ;;
    down) rec "$s" "down_$m" "$(tcp "$s" "$m" c "$od" $OUT_IPERF -R)" ;;
    fwd_in) rec "$s" "fwd_in_$m" "$(tcp "$s" "$m" h 127.0.0.1 "$fp")" ;;
    fwd_out) rec "$s" "fwd_out_$m" "$(tcp "$s" "$m" h 127.0.0.1 "$fp" -R)" ;;
    fwdo_in) rec "$s" "fwdo_in_$m" "$(tcp "$s" "$m" o "$po" "$fp")" ;;
    fwdo_out) rec "$s" "fwdo_out_$m" "$(tcp "$s" "$m" o "$po" "$fp" -R)" ;;
    conn_out) conn "$s" "$m" c "$od" $OUT_CONN conn_out ;;
    conn_in) conn "$s" "$m" h 127.0.0.1 "$cp" conn_in ;;
    conn_in_o) conn "$s" "$m" o "$po" "$cp" conn_in_o ;;
    esac
    t1=$(now_ns)
    read -r b1 tt1 < <(cpu_all)
    rec "$s" "cpuall_${test}_$m" "$(python3 -c "print('%.0f' % (100.0*($b1-$b0)/max(1,$tt1-$tt0)))")"
    if [ -n "$pid" ]; then
        c1=$(cpu_ticks "$pid")
        rec "$s" "cpu_${test}_$m" "$(python3 -c "print('%.0f' % (100.0*($c1-$c0)/$CLK_TCK/(($t1-$t0)/1e9)))")"
    fi
    log "$test mtu $m run $r $s: $(tail -n "$(($(wc -l <"$RAW") - n0))" "$RAW" | cut -d' ' -f2- | tr '\n' ' ')"
    return 0
}

# phase TEST MTU: RUNS rounds over the setups, rotated each round
phase() {
    local test=$1 m=$2 n=${#ACTIVE[@]} r i l0
    l0=$(loadavg)
    for ((r = 0; r < RUNS; r++)); do
        for ((i = 0; i < n; i++)); do
            measure "${ACTIVE[(r + i) % n]}" "$test" "$m" "$r"
            sleep 0.5
        done
    done
    rec _ "load_${test}_$m" "$l0->$(loadavg)"
}

if [ "${HOLD:-0}" != 0 ]; then
    for s in "${ACTIVE[@]}"; do
        for m in "${MTU_LIST[@]}"; do
            log "HOLD: $s MTU $m: container netns ${CNS[$s:$m]}${CNAME[$s:$m]:+ (switchyard exec ${CNAME[$s:$m]})}," \
                "host netns ${HNS[$s]} (127.0.0.1:${FWDP[$s:$m]} -> :$C_IPERF, :${CONNP[$s:$m]} -> :$C_CONN)," \
                "outside netns ${ONS[$s]} (to ${PUBO[$s]}), outside servers at ${ODST[$s]}:$OUT_IPERF/$OUT_CONN," \
                "NAT pid ${NATPID[$s:$m]:--}"
        done
    done
    log "HOLD: sleeping ${HOLD}s (connrate: $CR); Ctrl-C cleans up"
    sleep "$HOLD" &
    reg_pid $!
    wait $!
fi

n_tcp=0 n_conn=0
for t in $ALL_TESTS; do want "$t" || continue; if [[ $t == conn* ]]; then n_conn=$((n_conn + 1)); else n_tcp=$((n_tcp + 1)); fi; done
L_START=$(loadavg)
log "measuring: setups ${ACTIVE[*]}, MTUs ${MTU_LIST[*]}, RUNS=$RUNS DUR=$DUR CONN_DUR=$CONN_DUR, load1 $L_START," \
    "about $(python3 -c "print(round(${#MTU_LIST[@]}*$RUNS*${#ACTIVE[@]}*($n_tcp*($DUR+1.5)+$n_conn*($CONN_DUR+1))/60, 1))") min"
for m in "${MTU_LIST[@]}"; do
    for s in "${ACTIVE[@]}"; do set_mtu "$s" "$m"; rec "$s" "ifmtu_$m" "$(ip -n "${CNS[$s:$m]}" -o link show "${CIF[$s:$m]}" | grep -o 'mtu [0-9]*' | cut -d' ' -f2)"; done
    for t in $ALL_TESTS; do want "$t" && phase "$t" "$m"; done
done
[ -s "$T/conn.err" ] && log "connrate errors: $(sort "$T/conn.err" | uniq -c | sort -rn | head -5)"

# --- report --------------------------------------------------------------
python3 - "$RAW" "$L_START" "$(loadavg)" "${MTUS}" "${ALL_TESTS}" "${ACTIVE[@]}" <<'EOF'
import sys, statistics, math
raw, l_start, l_end, mtus, tests, setups = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5].split(), sys.argv[6:]
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

def cpu_cell(s, m):
    a, b = med(s, "cpu_" + m), med(s, "cpuall_" + m)
    if a is None and b is None:
        return "-"
    return "%s/%s" % ("-" if a is None else f(a), "-" if b is None else f(b))

names = {
    "up": "up: container -> outside, Gbit/s", "down": "down: outside -> container (-R), Gbit/s",
    "fwd_in": "fwd_in: host lo -> published port, Gbit/s", "fwd_out": "fwd_out: published port -> host lo (-R), Gbit/s",
    "fwdo_in": "fwdo_in: outside netns -> published port, Gbit/s", "fwdo_out": "fwdo_out: (-R), Gbit/s",
    "conn_out": "conn_out: container -> outside", "conn_in": "conn_in: host lo -> published port",
    "conn_in_o": "conn_in_o: outside netns -> published port",
}
units = {"rate": "/s", "p99": "us", "txp99": "us", "err": ""}
rows = []   # (kind, metric, label)
for mtu in mtus:
    rows.append(("head", None, "MTU %s" % mtu))
    rows.append(("val", "ifmtu_%s" % mtu, "  container interface MTU"))
    for t in tests:
        if t.startswith("conn"):
            for k, lab in (("rate", "conn/s"), ("p99", "connect p99 us"), ("txp99", "connect+1B reply p99 us"), ("err", "failed connections")):
                m = "%s_%s_%s" % (t, mtu, k)
                if k == "err" and not any(med(s, m) for s in setups):
                    continue
                rows.append(("val", m, "  %s, %s" % (names[t], lab)))
        else:
            rows.append(("val", "%s_%s" % (t, mtu), "  " + names[t]))
    for t in tests:
        rows.append(("cpu", "%s_%s" % (t, mtu), "  CPU%% NAT/machine %s" % t))
rows = [r for r in rows if r[0] == "head" or any((s, r[1]) in vals or (s, "cpuall_" + r[1]) in vals for s in setups)]

# anchor-style lines
for s in setups:
    fields = []
    for kind, m, _ in rows:
        if kind == "head":
            continue
        for mm in ([m] if kind == "val" else ["cpu_" + m, "cpuall_" + m]):
            v = vals.get((s, mm))
            if not v:
                continue
            if kind == "cpu":
                unit = "%"
            elif mm.startswith("conn"):
                unit = units[mm.rsplit("_", 1)[1]]
            elif mm.startswith("ifmtu"):
                unit = ""
            else:
                unit = "Gbps"
            fields.append("%s=%s%s[%s-%s]" % (mm, f(statistics.median(v)), unit, f(min(v)), f(max(v))))
    print("nat_%s %s" % (s, " ".join(fields)))
print()

w0 = max(len(r[2]) for r in rows)
w = max([len(s) for s in setups] + [len(cell(s, r[1])) for s in setups for r in rows if r[0] == "val"] + [9])
print("%-*s  %s" % (w0, "metric (median[min-max])", "  ".join("%-*s" % (w, s) for s in setups)))
for kind, m, label in rows:
    if kind == "head":
        print(label)
        continue
    c = cell if kind == "val" else cpu_cell
    print("%-*s  %s" % (w0, label, "  ".join("%-*s" % (w, c(s, m)) for s in setups)))
print("outside server: sy, nft: a separate netns behind the NAT; slirp, pasta: their host's loopback via 10.0.2.2")
print("load1: start %s, end %s; per phase: %s" % (l_start, l_end,
      ", ".join("%s %s" % (k, v) for k, v in loads.items())))
print()

goals = []  # (metric, peer, op, target, text)
for mtu in mtus:
    k = {"1500": 3.0, "65520": 1.5}.get(mtu)
    if k:
        goals += [("up_%s" % mtu, "slirp", ">=", k, "outbound TCP (up) MTU %s >= %gx slirp4netns" % (mtu, k)),
                  ("down_%s" % mtu, "slirp", ">=", k, "inbound TCP (down) MTU %s >= %gx slirp4netns" % (mtu, k))]
    goals += [("fwd_in_%s" % mtu, "pasta", ">=", 0.8, "published port from host lo (fwd_in) MTU %s >= 0.8x pasta splice" % mtu),
              ("fwd_out_%s" % mtu, "pasta", ">=", 0.8, "published port from host lo (fwd_out) MTU %s >= 0.8x pasta splice" % mtu),
              ("conn_out_%s_p99" % mtu, "pasta", "<=", 1.0, "connect p99 container -> outside MTU %s <= pasta" % mtu),
              ("conn_in_%s_p99" % mtu, "pasta", "<=", 1.0, "connect p99 host lo -> published MTU %s <= pasta" % mtu)]
if "sy" not in setups:
    print("goals: sy was not measured in this run (see above), no ratios")
else:
    print("goals (ratio of medians from this run):")
    for m, peer, op, target, text in goals:
        a, b = med("sy", m), med(peer, m)
        if a is None or b is None or b == 0:
            continue
        r = a / b
        ok = r >= target if op == ">=" else r <= target
        print("  %-66s sy/%s = %6.3g  (%s %g)  %s" % (text, peer, r, op, target, "MET" if ok else "MISSED"))
    info = []
    for mtu in mtus:
        for t in ("conn_out", "conn_in"):
            m = "%s_%s_txp99" % (t, mtu)
            a, b = med("sy", m), med("pasta", m)
            if a is not None and b:
                info.append("%s connect+reply p99 sy/pasta=%.3g" % (m.rsplit("_", 1)[0], a / b))
        for t in tests:
            m = "%s_%s" % (t, mtu) if not t.startswith("conn") else "%s_%s_rate" % (t, mtu)
            a, b = med("sy", m), med("nft", m)
            if a is not None and b:
                info.append("%s sy/nft=%.3g" % (m, a / b))
    if info:
        print("  info (no goal): " + ", ".join(info))
EOF
