//! Shared harness for the real-mode tests: root checks, a daemon per test
//! in its own temporary state directory, and cleanup that runs even when a
//! test fails (a guard's `Drop`).
#![allow(dead_code)]
// each test binary uses a different part of it
// Tests wait for real processes with wall-clock timeouts; only the library
// crates must stay off the system clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_switchyard");
/// The unprivileged user rootless tests run as.
pub const TEST_USER: &str = "switchyard-test";

/// Effective uid, from /proc.
pub fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    line.split_whitespace()
        .nth(2)
        .expect("effective uid")
        .parse()
        .expect("uid number")
}

/// True when the test may run. Without root it prints a loud SKIPPED line
/// and returns false — except under CI (which runs as root), where it fails.
pub fn require_root(test: &str) -> bool {
    if euid() == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root and CI runs as root: run the test suite as root");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {test} needs root (namespaces, TAP devices) ***\n"
    );
    false
}

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command and returns stdout, failing the test with its output if
/// it does not succeed.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies an executable to `to` for another user to run, in a `cp` child
/// process. Not `std::fs::copy`: while this process holds the copy's write
/// descriptor, a child forked meanwhile by any other test thread holds it
/// too until it `exec`s, and running the copy then fails with "Text file
/// busy" (ETXTBSY), a flake CI saw.
pub fn copy_executable(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("--").arg(from).arg(to));
}

/// Polls `probe` until it returns `Ok` or `timeout` has passed, and returns
/// that value. On timeout the test fails naming `what` and the last `Err`
/// the probe gave (what it saw), instead of sleeping a fixed time and
/// hoping.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// True while `pid` is a process that has not exited (zombies count as
/// gone).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Live sandbox holders (`switchyard __internal holder ...`) whose command
/// line mentions `dir` (a daemon's directory: its state directory appears
/// in every holder's arguments), found by scanning `/proc` — what a daemon
/// that lost track of a holder would leave running.
pub fn holders_mentioning(dir: &Path) -> BTreeSet<u32> {
    let needle = dir.display().to_string();
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline);
        if text.contains("__internal\0holder\0") && text.contains(&needle) && process_alive(pid) {
            out.insert(pid);
        }
    }
    out
}

/// A daemon with its own state directory and socket, stopped (with every
/// container it made) when dropped.
pub struct TestDaemon {
    /// Holds the state directory and the socket.
    pub dir: tempfile::TempDir,
    /// The API socket.
    pub socket: PathBuf,
    /// Extra environment for the daemon (e.g. `SWITCHYARD_FAILPOINT`),
    /// applied at every (re)start.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    extra_args: Vec<String>,
    wrapper: Vec<String>,
    /// Run the CLI as this (uid, gid), as the user of a rootless daemon
    /// would: `exec` then enters the container's user namespace as the
    /// user it maps, not as an unmapped root.
    pub cli_user: Option<(String, String)>,
}

impl TestDaemon {
    /// Starts a daemon and waits until it answers.
    pub fn start() -> TestDaemon {
        Self::start_with(&[])
    }

    /// Starts a daemon with extra arguments.
    pub fn start_with(extra: &[&str]) -> TestDaemon {
        Self::start_wrapped(&[], extra)
    }

    /// Starts a daemon under a wrapper command that execs it (such as
    /// `prlimit --nofile=N:N`), with extra arguments.
    pub fn start_wrapped(wrapper: &[&str], extra: &[&str]) -> TestDaemon {
        Self::start_in(wrapper, extra, false)
    }

    /// Like [`TestDaemon::start_wrapped`], with a directory any user may
    /// write, for a wrapper that drops to the unprivileged test user.
    pub fn start_wrapped_unprivileged(wrapper: &[&str], extra: &[&str]) -> TestDaemon {
        Self::start_in(wrapper, extra, true)
    }

    fn start_in(wrapper: &[&str], extra: &[&str], open: bool) -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("swy-test-")
            .tempdir()
            .expect("tempdir");
        if open {
            run_ok(Command::new("chmod").arg("0777").arg(dir.path()));
        }
        let socket = dir.path().join("api.sock");
        let mut extra_args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !extra_args.iter().any(|a| a == "--dns-upstream") {
            // Tests send traffic only to loopback: never let a test daemon
            // forward to the host's real resolvers. Port 9 (discard) has no
            // listener, so forwarded names fail fast with SERVFAIL.
            extra_args.extend(["--dns-upstream".to_string(), "127.0.0.1:9".to_string()]);
        }
        let mut d = TestDaemon {
            dir,
            socket,
            env: Vec::new(),
            child: None,
            extra_args,
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            cli_user: None,
        };
        d.spawn();
        d
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(EXE);
                c
            }
            None => Command::new(EXE),
        };
        let child = cmd
            .arg("daemon")
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--socket")
            .arg(&self.socket)
            .args(&self.extra_args)
            .env("SWITCHYARD_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.cli(&["network", "ls", "-q"]).status.success() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("daemon exited at start ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon did not answer within 15 s:\n{}", self.log());
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn cli_command(&self) -> Command {
        match &self.cli_user {
            Some((uid, gid)) => as_test_user(uid, gid, EXE),
            None => Command::new(EXE),
        }
    }

    /// Runs `switchyard ARGS` against this daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command()
            .args(args)
            .env("SWITCHYARD_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .output()
            .expect("run the CLI")
    }

    /// Starts `switchyard ARGS` against this daemon without waiting for it
    /// (output captured), e.g. to kill the daemon while it runs.
    pub fn cli_spawn(&self, args: &[&str]) -> Child {
        self.cli_command()
            .args(args)
            .env("SWITCHYARD_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the CLI")
    }

    /// Waits for the daemon to exit on its own (a failpoint killed it).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("started");
        let status = wait_until("the daemon to exit", timeout, || match child.try_wait() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        });
        self.child = None;
        status
    }

    /// The containers as `ps --format json` reports them.
    pub fn containers(&self) -> Vec<serde_json::Value> {
        match serde_json::from_str(&self.ok(&["ps", "--format", "json"])) {
            Ok(serde_json::Value::Array(v)) => v,
            other => panic!("ps --format json: {other:?}"),
        }
    }

    /// The holder pids the daemon reports for its containers.
    pub fn reported_holders(&self) -> BTreeSet<u32> {
        self.containers()
            .iter()
            .filter_map(|c| c["holder_pid"].as_u64())
            .map(|p| p as u32)
            .collect()
    }

    /// Runs the CLI and returns stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "switchyard {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI expecting failure; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "switchyard {args:?} unexpectedly succeeded"
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a command in a container; true if it exited 0.
    pub fn exec_ok(&self, container: &str, argv: &[&str]) -> bool {
        let mut args = vec!["exec", container, "--"];
        args.extend_from_slice(argv);
        self.cli(&args).status.success()
    }

    /// `ping -c COUNT` from one container to an address.
    pub fn ping(&self, from: &str, to: &str, count: u32) -> bool {
        let c = count.to_string();
        self.exec_ok(from, &["ping", "-c", &c, "-i", "0.2", "-W", "1", to])
    }

    /// Starts a container running `sleep` in the background.
    pub fn container(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["run", "--name", name, "-d"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sleep", "100000"]);
        self.ok(&args).trim().to_string()
    }

    /// A container's IPv4 address on its first network (without prefix).
    pub fn ip_of(&self, container: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["ps", "--format", "json"])).unwrap();
        let c = v
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == container)
            .expect("container listed");
        c["networks"][0]["ipv4"]
            .as_str()
            .expect("has IPv4")
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }

    /// Kills the daemon with SIGKILL (no cleanup: a crash).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again over the same state directory (killing it
    /// first if it still runs).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts the daemon again over the same state with other flags.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.kill9();
        self.extra_args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = String::from_utf8_lossy(&self.cli(&["ps", "-q"]).stdout).into_owned();
            for id in ids.split_whitespace() {
                let _ = self.cli(&["rm", "-f", id]);
            }
            self.kill9();
        }
        kill_processes_mentioning(self.dir.path());
    }
}

/// SIGKILLs every process whose command line mentions `path` (holders and
/// helpers left by a test that failed midway).
pub fn kill_processes_mentioning(path: &Path) {
    let needle = path.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }
}

/// Makes sure the unprivileged test user exists and can use /dev/net/tun;
/// returns (uid, gid).
pub fn ensure_test_user() -> (String, String) {
    // `useradd` exits 9 when the user exists (another run or test binary).
    let status = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            TEST_USER,
        ])
        .stderr(Stdio::null())
        .status()
        .expect("useradd");
    assert!(
        status.success() || status.code() == Some(9),
        "useradd {TEST_USER}: {status}"
    );
    // Ordinary users need read/write access to /dev/net/tun; 0666 is the
    // default on most distributions (TAPs can only be made in namespaces
    // where the caller holds CAP_NET_ADMIN), this machine ships 0600.
    run_ok(Command::new("chmod").args(["0666", "/dev/net/tun"]));
    let uid = run_ok(Command::new("id").args(["-u", TEST_USER]))
        .trim()
        .to_string();
    let gid = run_ok(Command::new("id").args(["-g", TEST_USER]))
        .trim()
        .to_string();
    (uid, gid)
}

/// A `Command` that runs `program` as the unprivileged test user.
pub fn as_test_user(uid: &str, gid: &str, program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
        "env",
        "HOME=/tmp",
    ])
    .arg(program);
    c
}
