# shellcheck shell=bash disable=SC2015  # "a && b || die": die when either fails
# Switchyard helpers for the bench scripts (compare.sh, dns_compare.sh,
# nat_compare.sh).
# Sourced after the anchors' lib.sh (which provides ns_add, bg_run, reg_pid,
# mk_tmpdir, die, log and the _ANCH_* cleanup lists). Not run on its own.
#
# A Switchyard instance here = one daemon with its own state dir and API
# socket, running inside a private network namespace (so nothing it makes can
# appear in the init namespace), plus the containers made through it. Every
# container's network namespace is given a name with `ip netns attach`, so the
# anchors' helpers (nsx, iperf_tcp, ping_run, ...) work on it unchanged.
#
# Cleanup, in the EXIT trap: sy_cleanup_all (before anch_cleanup) runs
# `rm -f` on every container and SIGTERMs the daemon; sy_kill_leftovers
# (after anch_cleanup) SIGKILLs whatever still lives in the containers'
# network namespaces (holders, sleeps), found by the namespace inode recorded
# at creation, never by process name.

_SY_SOCKS=()     # API sockets of the daemons we started
_SY_DPIDS=()     # their pids
_SY_BINS=()      # and binaries
_SY_NETNS=()     # "dev:ino" of every container netns we made

# Which binary: $SWITCHYARD_BIN, else the release build of $CARGO_TARGET_DIR
# (or the workspace's target/).
sy_find_bin() {
    local repo; repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    SY_BIN=${SWITCHYARD_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/switchyard}
    [ -x "$SY_BIN" ] || die "no Switchyard binary at $SY_BIN: build it (cd $repo && cargo build --release), or set SWITCHYARD_BIN / CARGO_TARGET_DIR"
}

# sy SOCKET args...: the CLI against one daemon
sy() { local s=$1; shift; SWITCHYARD_SOCKET=$s "$SY_BIN" "$@"; }

# sy_daemon VAR_SOCK VAR_PID NETNS [daemon flags...]: start a daemon in NETNS
# (created here), wait until it answers. Stores its socket path and pid.
# $SY_DAEMON_ENV (words "NAME=VALUE") is added to the daemon's environment.
# (Locals are _sy-prefixed so they cannot shadow the caller's VAR names.)
sy_daemon() {
    local _sy_vs=$1 _sy_vp=$2 _sy_ns=$3; shift 3
    local -a _sy_env
    read -r -a _sy_env <<<"${SY_DAEMON_ENV:-}"
    local _sy_dir _sy_sock _sy_t
    mk_tmpdir _sy_dir
    _sy_sock=$_sy_dir/api.sock
    ns_add "$_sy_ns"
    # --dns-upstream to a dead local port: the bench never lets the daemon
    # forward a query off the machine.
    bg_run "$_sy_ns" "$_sy_dir/daemon.log" env "${_sy_env[@]}" "$SY_BIN" daemon --state-dir "$_sy_dir/state" \
        --socket "$_sy_sock" --dns-upstream 127.0.0.1:9 "$@"
    _SY_SOCKS+=("$_sy_sock"); _SY_DPIDS+=("$BG_PID"); _SY_BINS+=("$SY_BIN")
    for ((_sy_t = 0; _sy_t < 150; _sy_t++)); do
        sy "$_sy_sock" network ls -q >/dev/null 2>&1 && break
        kill -0 "$BG_PID" 2>/dev/null || die "switchyard daemon exited: $(tail -5 "$_sy_dir/daemon.log")"
        sleep 0.1
    done
    sy "$_sy_sock" network ls -q >/dev/null 2>&1 ||
        die "switchyard daemon did not answer: $(tail -5 "$_sy_dir/daemon.log")"
    printf -v "$_sy_vs" '%s' "$_sy_sock"
    printf -v "$_sy_vp" '%s' "$BG_PID"
}

# sy_container VAR SOCK NAME NETWORK NSNAME [run flags...]: run a sleeping
# container, name its netns NSNAME (registered for deletion), store its IPv4
# in VAR (no subshell, so the cleanup lists keep what it registers).
sy_container() {
    local _sy_var=$1 _sy_sock=$2 _sy_name=$3 _sy_net=$4 _sy_nsname=$5; shift 5
    sy "$_sy_sock" run --name "$_sy_name" --network "$_sy_net" "$@" -d -- sleep 3600 >/dev/null ||
        die "switchyard run $_sy_name failed"
    sy_adopt_netns "$_sy_var" "$_sy_sock" "$_sy_name" "$_sy_nsname"
}

# sy_adopt_netns VAR SOCK NAME NSNAME: for a running container NAME, record
# its netns for sy_kill_leftovers, name it NSNAME with `ip netns attach`
# (registered for deletion) and store its IPv4 in VAR. For containers
# started with a command of the caller's choice (sy_container runs sleep).
sy_adopt_netns() {
    local _sy_var=$1 _sy_sock=$2 _sy_name=$3 _sy_nsname=$4
    local _sy_info _sy_pid _sy_ip
    _sy_info=$(sy "$_sy_sock" ps --format json) || die "switchyard ps failed"
    read -r _sy_pid _sy_ip < <(printf '%s' "$_sy_info" | python3 -c '
import json,sys
for c in json.load(sys.stdin):
    if c["name"] == sys.argv[1]:
        print(c["holder_pid"], c["networks"][0]["ipv4"].split("/")[0]); break' "$_sy_name")
    [ -n "$_sy_pid" ] && [ -d "/proc/$_sy_pid" ] || die "no holder pid for $_sy_name"
    _SY_NETNS+=("$(stat -L -c '%d:%i' "/proc/$_sy_pid/ns/net")")
    ip netns del "$_sy_nsname" 2>/dev/null
    ip netns attach "$_sy_nsname" "$_sy_pid" || die "ip netns attach $_sy_nsname $_sy_pid"
    _ANCH_NS+=("$_sy_nsname")
    printf -v "$_sy_var" '%s' "$_sy_ip"
}

# Kill every process whose network namespace is one of ours.
sy_kill_leftovers() {
    [ ${#_SY_NETNS[@]} -gt 0 ] || return 0
    local p id k
    for p in /proc/[0-9]*; do
        id=$(stat -L -c '%d:%i' "$p/ns/net" 2>/dev/null) || continue
        for k in "${_SY_NETNS[@]}"; do
            [ "$id" = "$k" ] && { kill -9 "${p#/proc/}" 2>/dev/null; break; }
        done
    done
}

sy_cleanup_all() {
    local i s ids t
    for ((i = 0; i < ${#_SY_SOCKS[@]}; i++)); do
        s=${_SY_SOCKS[i]}
        if kill -0 "${_SY_DPIDS[i]}" 2>/dev/null; then
            ids=$(timeout 10 env SWITCHYARD_SOCKET="$s" "${_SY_BINS[i]}" ps -q 2>/dev/null)
            for c in $ids; do timeout 10 env SWITCHYARD_SOCKET="$s" "${_SY_BINS[i]}" rm -f "$c" >/dev/null 2>&1; done
            kill -TERM "${_SY_DPIDS[i]}" 2>/dev/null
            for ((t = 0; t < 50; t++)); do kill -0 "${_SY_DPIDS[i]}" 2>/dev/null || break; sleep 0.1; done
        fi
    done
}

# cpu_ticks PID: utime+stime of a process (all threads), in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# cpu_all: "busy total" jiffies summed over all cores (from /proc/stat)
cpu_all() { awk '/^cpu / {t=0; for (i=2; i<=NF; i++) t+=$i; print t-$5-$6, t}' /proc/stat; }

# sy_variant TAG: for experiments, setups named sy_TAG run a daemon with the
# environment in $SY_ENV_TAG, the extra flags in $SY_FLAGS_TAG and the binary
# $SY_BIN_TAG (default: the same as sy), e.g.
#   SETUPS="sy sy_spin kbr" SY_FLAGS_spin="--busy-poll-us 50"
#   SETUPS="sy sy_old" SY_BIN_old=/path/to/an/older/switchyard
# Prints nothing; sets SY_DAEMON_ENV, SY_VARIANT_FLAGS (an array) and
# SY_BIN (restore it with sy_variant_end).
sy_variant() {
    local e=SY_ENV_$1 f=SY_FLAGS_$1 b=SY_BIN_$1
    SY_DAEMON_ENV=${!e:-}
    # shellcheck disable=SC2034  # read by the scripts that source this
    read -r -a SY_VARIANT_FLAGS <<<"${!f:-}"
    _SY_MAIN_BIN=$SY_BIN
    SY_BIN=${!b:-$SY_BIN}
    [ -x "$SY_BIN" ] || die "$b: no executable at $SY_BIN"
}
sy_variant_end() { SY_DAEMON_ENV=; SY_BIN=$_SY_MAIN_BIN; }
