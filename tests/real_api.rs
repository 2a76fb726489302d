//! The daemon's API under abuse: malformed, huge and idle requests get a
//! status (never a silent close), memory stays bounded, thousands of idle
//! connections cannot lock the API out, and none of it disturbs the data
//! plane. Real daemons, so root (CI runs as root); without it each test
//! prints SKIPPED. The client's message for a request that got no reply
//! needs no root.

// Real processes are waited for with wall-clock timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{require_root, unique, wait_until, TestDaemon, EXE};
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The tests that open thousands of connections or push hundreds of MiB
/// run one at a time: two cores, one descriptor table.
fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Raises this process's descriptor limit towards `n` and returns the
/// limit in force: the hard limit is raised too where we may (root with
/// CAP_SYS_RESOURCE), else the soft one goes up to the hard one. Daemons
/// already started keep theirs.
fn raise_nofile(n: u64) -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: l is a valid rlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) }, 0);
    if l.rlim_cur >= n {
        return l.rlim_cur;
    }
    let wanted = libc::rlimit {
        rlim_cur: n,
        rlim_max: l.rlim_max.max(n),
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        return n;
    }
    l.rlim_cur = l.rlim_max;
    // SAFETY: raising the soft limit up to the hard one is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) }, 0);
    l.rlim_cur
}

/// A `Vm*` line of /proc/PID/status, in KiB.
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon status");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Descriptors the daemon holds.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Parses an HTTP response: (status, JSON body).
fn parse_response(bytes: &[u8]) -> Option<(u16, Value)> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// Reads what the daemon answers until it closes (or `timeout`).
fn read_answer(s: &mut UnixStream, timeout: Duration) -> Option<(u16, Value)> {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A daemon that closes with our bytes unread resets the
            // connection after its answer.
            Err(_) => break,
        }
    }
    parse_response(&got)
}

/// Sends raw bytes to the API and returns its answer; panics if there is
/// none within 15 s (the old daemon closed such connections silently).
fn exchange(socket: &Path, raw: &[u8]) -> (u16, Value) {
    let mut s = UnixStream::connect(socket).expect("connect to the API");
    let _ = s.write_all(raw);
    read_answer(&mut s, Duration::from_secs(15)).unwrap_or_else(|| {
        panic!(
            "no HTTP answer to {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        )
    })
}

fn assert_user_error(answer: &(u16, Value), status: u16, mentions: &str) {
    assert_eq!(answer.0, status, "{answer:?}");
    assert_eq!(answer.1["kind"], "user", "{answer:?}");
    let message = answer.1["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(mentions),
        "{message:?} mentions {mentions:?}"
    );
}

/// The connection cap the daemon announced in its log.
fn max_connections(d: &TestDaemon) -> usize {
    let log = d.log();
    // Drop the colours: ESC [ ... m.
    let mut plain = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    let at = plain
        .find("max_connections=")
        .unwrap_or_else(|| panic!("no max_connections in the log:\n{log}"));
    plain[at + "max_connections=".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .expect("a number")
}

/// Opens `n` connections that each send one byte and then nothing.
fn idle_connections(socket: &Path, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|i| {
            let mut s =
                UnixStream::connect(socket).unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
            s.write_all(b"G").unwrap();
            s
        })
        .collect()
}

/// What an idle connection has heard: `None` if nothing yet.
fn heard(s: &mut UnixStream) -> Option<(u16, Value)> {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let got = match s.read(&mut buf) {
        Ok(n) => parse_response(&buf[..n]),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(e) => panic!("reading an idle connection: {e}"),
    };
    s.set_nonblocking(false).unwrap();
    got
}

/// `network ls` through the CLI, timed.
fn timed_network_ls(d: &TestDaemon) -> Duration {
    let t = Instant::now();
    d.ok(&["network", "ls", "-q"]);
    t.elapsed()
}

#[test]
fn a_300_mib_request_line_is_refused_with_414_and_the_daemons_memory_stays_bounded() {
    if !require_root("300_mib_line") {
        return;
    }
    let _heavy = heavy();
    let d = TestDaemon::start();
    let pid = d.pid();
    let rss_before = vm_kib(pid, "VmRSS:");
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let mut writer = s.try_clone().unwrap();
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = Arc::clone(&peak);
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'A'; 1 << 20];
        let mut sent = 0usize;
        for _ in 0..300 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
            sampler.fetch_max(vm_kib(pid, "VmRSS:"), Ordering::Relaxed);
        }
        let _ = writer.shutdown(std::net::Shutdown::Write);
        sent
    });
    let answer = read_answer(&mut s, Duration::from_secs(60));
    let sent = sender.join().unwrap();
    let peak_rss = peak.load(Ordering::Relaxed).max(vm_kib(pid, "VmRSS:"));
    let hwm = vm_kib(pid, "VmHWM:");
    eprintln!(
        "long line: {} MiB sent before the daemon closed; VmRSS {rss_before} KiB before, \
         {peak_rss} KiB at most during, VmHWM {hwm} KiB",
        sent >> 20
    );
    let answer = answer.expect("an HTTP answer to an endless request line");
    assert_user_error(&answer, 414, "longer than");
    assert!(
        peak_rss < rss_before + 32 * 1024,
        "VmRSS grew from {rss_before} KiB to {peak_rss} KiB"
    );
    assert!(sent < 300 << 20, "the daemon stopped reading early");
    timed_network_ls(&d);
}

#[test]
fn a_bad_content_length_is_refused_with_400() {
    if !require_root("bad_content_length") {
        return;
    }
    let d = TestDaemon::start();
    for v in ["abc", "-5", "1e3", ""] {
        let answer = exchange(
            &d.socket,
            format!("POST /v1/networks HTTP/1.1\r\nContent-Length: {v}\r\n\r\n").as_bytes(),
        );
        assert_user_error(&answer, 400, "Content-Length");
    }
}

#[test]
fn too_many_headers_are_refused_with_431() {
    if !require_root("too_many_headers") {
        return;
    }
    let d = TestDaemon::start();
    let mut req = "GET /v1/networks HTTP/1.1\r\n".to_string();
    for i in 0..200 {
        req.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    req.push_str("\r\n");
    assert_user_error(&exchange(&d.socket, req.as_bytes()), 431, "header lines");
}

#[test]
fn invalid_utf8_in_the_head_is_refused_with_400() {
    if !require_root("invalid_utf8") {
        return;
    }
    let d = TestDaemon::start();
    let answer = exchange(
        &d.socket,
        b"GET /v1/networks/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_user_error(&answer, 400, "UTF-8");
    let answer = exchange(
        &d.socket,
        b"GET /v1/networks HTTP/1.1\r\nX-Name: \xc3\x28\r\n\r\n",
    );
    assert_user_error(&answer, 400, "UTF-8");
}

#[test]
fn a_chunked_request_body_is_decoded_not_read_as_empty() {
    if !require_root("chunked_body") {
        return;
    }
    let d = TestDaemon::start();
    let name = unique("chunky");
    let body = format!(r#"{{"name":"{name}","subnets":["10.61.0.0/24"]}}"#);
    let (first, rest) = body.split_at(10);
    let req = format!(
        "POST /v1/networks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x};note=x\r\n{rest}\r\n0\r\n\r\n",
        first.len(),
        rest.len()
    );
    let (status, created) = exchange(&d.socket, req.as_bytes());
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["Name"], name.as_str());
    let inspect: Value = serde_json::from_str(&d.ok(&["network", "inspect", &name])).unwrap();
    assert_eq!(inspect[0]["IPAM"]["Config"][0]["Subnet"], "10.61.0.0/24");
}

#[test]
fn a_body_over_1_mib_is_refused_with_413_before_it_is_sent() {
    if !require_root("body_too_large") {
        return;
    }
    let d = TestDaemon::start();
    let answer = exchange(
        &d.socket,
        format!(
            "POST /v1/networks HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        )
        .as_bytes(),
    );
    assert_user_error(&answer, 413, "larger than");
    // The same through chunks that add up past the limit.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"POST /v1/networks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000));
    for _ in 0..20 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let answer = read_answer(&mut s, Duration::from_secs(15)).expect("an answer");
    assert_user_error(&answer, 413, "larger than");
}

#[test]
fn a_connection_that_sends_no_complete_request_is_closed_with_408() {
    if !require_root("idle_408") {
        return;
    }
    let d = TestDaemon::start();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"GET /v1/netw").unwrap();
    let t = Instant::now();
    let answer = read_answer(&mut s, Duration::from_secs(20)).expect("an answer");
    assert_user_error(&answer, 408, "within");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "closed after {:?}",
        t.elapsed()
    );
}

#[test]
fn idle_connections_beyond_the_cap_get_503_and_network_ls_still_answers() {
    if !require_root("idle_cap") {
        return;
    }
    let _heavy = heavy();
    let d = TestDaemon::start();
    let cap = max_connections(&d);
    let extra = 200;
    let limit = raise_nofile((cap + extra) as u64 + 1024);
    assert!(
        limit >= (cap + extra) as u64 + 512,
        "descriptor limit {limit}"
    );
    let fds_before = open_fds(d.pid());
    let mut conns = idle_connections(&d.socket, cap + extra);
    // The oldest `extra` connections give way to the newer ones: wait
    // until each has heard its answer.
    let mut answers: Vec<Option<(u16, Value)>> = vec![None; extra];
    wait_until(
        "an answer on every connection beyond the cap",
        Duration::from_secs(10),
        || {
            for (answer, c) in answers.iter_mut().zip(conns.iter_mut()) {
                if answer.is_none() {
                    *answer = heard(c);
                }
            }
            match answers.iter().position(Option::is_none) {
                None => Ok(()),
                Some(i) => Err(format!("connection {i} heard nothing yet")),
            }
        },
    );
    let held = open_fds(d.pid()) - fds_before;
    eprintln!("cap {cap}: the daemon holds {held} idle connections");
    for answer in answers.into_iter().flatten() {
        assert_eq!(answer.0, 503, "{answer:?}");
        let message = answer.1["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("limit of {cap} open connections")),
            "{message}"
        );
    }
    for (i, c) in conns.iter_mut().enumerate().skip(extra) {
        assert!(
            heard(c).is_none(),
            "connection {i} within the cap was answered"
        );
    }
    assert!(held <= cap + 8, "held {held} connections, cap {cap}");
    let took = timed_network_ls(&d);
    eprintln!("network ls with {cap} idle connections open: {took:?}");
    assert!(took < Duration::from_secs(2), "network ls took {took:?}");
    assert_eq!(
        heard(&mut conns[extra]).map(|a| a.0),
        Some(503),
        "network ls made room by closing the longest-idle connection"
    );
}

#[test]
fn thousands_of_idle_connections_and_a_flood_of_bad_requests_leave_the_api_and_the_data_plane_working(
) {
    if !require_root("api_load") {
        return;
    }
    let _heavy = heavy();
    let d = TestDaemon::start();
    let net = unique("load");
    d.ok(&["network", "create", &net, "--subnet", "10.62.0.0/24"]);
    let (a, b) = (unique("la"), unique("lb"));
    d.container(&a, &["--network", &net]);
    d.container(&b, &["--network", &net, "--ip", "10.62.0.20"]);
    assert!(
        d.ping(&a, "10.62.0.20", 1),
        "the containers ping before the load"
    );
    // As many as our descriptors allow, up to 20,000, keeping 1,024 for
    // the rest of the test (a container's hard limit may be that low).
    let limit = raise_nofile(21_024);
    let idle_count = (limit.saturating_sub(1024) as usize).min(20_000);
    assert!(
        idle_count >= 5_000,
        "descriptor limit {limit} too low for the load"
    );

    // 200 pings at 50 ms: 10 s of traffic through the switch.
    let ping = Command::new(EXE)
        .env("SWITCHYARD_SOCKET", &d.socket)
        .args([
            "exec",
            &a,
            "--",
            "ping",
            "-c",
            "200",
            "-i",
            "0.05",
            "-W",
            "1",
            "10.62.0.20",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ping");

    let stop = Arc::new(AtomicBool::new(false));
    let floods: Vec<_> = (0..2)
        .map(|k| {
            let socket = d.socket.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let bad: [&[u8]; 5] = [
                    b"POST /v1/networks HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
                    b"GET /v1/\xff HTTP/1.1\r\n\r\n",
                    b"GARBAGE\r\n\r\n",
                    b"POST /v1/networks HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                    b"POST /v1/networks HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                ];
                let (mut sent, mut answered) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = UnixStream::connect(&socket) else {
                        continue;
                    };
                    let _ = s.write_all(bad[(sent as usize + k) % bad.len()]);
                    sent += 1;
                    if read_answer(&mut s, Duration::from_secs(5))
                        .is_some_and(|(status, _)| (400..600).contains(&status))
                    {
                        answered += 1;
                    }
                }
                (sent, answered)
            })
        })
        .collect();

    let opener = {
        let socket = d.socket.clone();
        std::thread::spawn(move || idle_connections(&socket, idle_count))
    };
    let mut slowest = Duration::ZERO;
    let mut calls = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        slowest = slowest.max(timed_network_ls(&d));
        calls += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let idle = opener.join().unwrap();
    let held = open_fds(d.pid());
    let after_open = timed_network_ls(&d);
    slowest = slowest.max(after_open);
    stop.store(true, Ordering::Relaxed);
    let (mut sent, mut answered) = (0, 0);
    for f in floods {
        let (s, a) = f.join().unwrap();
        sent += s;
        answered += a;
    }
    let out = ping.wait_with_output().unwrap();
    let ping_out = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "load: {} idle connections opened, daemon holds {held} descriptors; {sent} bad requests, \
         {answered} answered with a 4xx/5xx; {calls} network ls, slowest {slowest:?}",
        idle.len()
    );
    eprintln!(
        "{}",
        ping_out
            .lines()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        slowest < Duration::from_secs(2),
        "network ls took {slowest:?}"
    );
    assert!(
        sent > 0 && answered == sent,
        "{answered} of {sent} bad requests answered"
    );
    assert!(
        ping_out.contains("200 packets transmitted, 200 received"),
        "the ping lost packets:\n{ping_out}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(idle);
    assert!(d.ping(&a, "10.62.0.20", 1), "still pinging after the load");
}

/// A stand-in daemon that reads each request and hangs up without a reply,
/// as a daemon killed after committing would.
fn hang_up_server(socket: &Path) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

#[test]
fn a_request_sent_without_a_reply_says_it_may_have_been_applied_and_how_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let server = hang_up_server(&socket);
    let cli = |args: &[&str]| {
        Command::new(EXE)
            .args(args)
            .env("SWITCHYARD_SOCKET", &socket)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = cli(&["network", "create", "maybe"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("got no reply"), "{err}");
    assert!(err.contains("may have been applied"), "{err}");
    assert!(err.contains("switchyard network ls"), "{err}");
    assert!(!err.contains("cannot reach"), "{err}");
    let out = cli(&["ps"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed nothing"),
        "a GET changes nothing: {err}"
    );
    server.join().unwrap();
    // With no daemon at all, the message is the other one.
    std::fs::remove_file(&socket).unwrap();
    let err = String::from_utf8_lossy(&cli(&["network", "ls"]).stderr).into_owned();
    assert!(err.contains("cannot reach the switchyard daemon"), "{err}");
}
