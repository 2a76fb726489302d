//! `switchyard daemon`: owns the controller, the switch data plane, the
//! sandboxes' namespaces and the embedded DNS, and serves the API on a unix
//! socket (mode 0600: only its owner may drive the switch).
//!
//! Threads: one serves API connections (an event loop; a few handler
//! threads run the requests, serialised on one control-plane lock), the
//! data plane runs on its own thread and never waits for the control plane,
//! and the main thread waits for SIGTERM/SIGINT to stop cleanly. State is on disk after every
//! operation, so a SIGKILL loses nothing either.

mod api;
mod dns;
mod publish;
mod runtime;

use crate::cli::DaemonArgs;
use crate::http::server::{Config as ServerConfig, Server};
use crate::paths;
use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use runtime::{Runtime, RuntimeOptions};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use switchyard_ipam::DefaultPool;
use switchyard_switch::controller::ControllerOptions;
use switchyard_switch::{Controller, DriverRegistry, FileStore, Recovery, StoreError};

/// Everything behind the control-plane lock.
pub(crate) struct Inner {
    pub(crate) controller: Controller,
    pub(crate) runtime: Runtime,
}

/// The running daemon.
pub(crate) struct Daemon {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) state_dir: PathBuf,
    pub(crate) socket: PathBuf,
}

/// Raises the soft limit on open descriptors to the hard limit. The daemon
/// holds several per container (TAPs, DNS sockets, namespace handles), so
/// the usual soft limit of 1024 would stop it at a couple of hundred
/// containers; it polls with epoll, so large descriptor numbers are fine.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: limit is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur >= limit.rlim_max {
        return;
    }
    let before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: raising the soft limit up to the hard one is always allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        tracing::info!(
            from = before,
            to = limit.rlim_cur,
            "raised the open-descriptor limit"
        );
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
/// The gateway gives every relayed TCP connection two
/// [`runtime::RELAY_TCP_BUFFER`]-sized rings. With glibc's adaptive mmap
/// threshold those would soon come from the heap and be zeroed by `calloc`
/// at every connect (8 MiB of memset, ~0.5 ms); with a fixed threshold
/// they are fresh anonymous mappings, whose pages the kernel hands out
/// zeroed only when touched, so a short connection costs two pages and a
/// bulk one grows to its window as the kernel's own sockets do.
fn large_allocations_map_fresh_pages() {
    // SAFETY: mallopt only changes allocator tunables; no memory is touched.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
    if ok != 1 {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) refused; connects may cost a memset");
    }
}

pub fn run(args: DaemonArgs) -> anyhow::Result<ExitCode> {
    if let Some(store) = &args.store {
        eprintln!(
            "switchyard: --store {store}: a shared etcd store is not available yet in this version; \
             omit --store to use the embedded store in --state-dir"
        );
        return Ok(ExitCode::from(1));
    }
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(paths::default_state_dir);
    let socket = args
        .socket
        .socket
        .clone()
        .unwrap_or_else(paths::default_socket);

    raise_fd_limit();
    large_allocations_map_fresh_pages();

    // Block the stop signals before any thread exists, so every thread
    // inherits the mask and only the main thread's sigwait sees them.
    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGTERM);
    stop_signals.add(Signal::SIGINT);
    stop_signals
        .thread_block()
        .context("blocking SIGTERM/SIGINT")?;

    let recovery = if args.recover_from_prev {
        Recovery::FromPrev
    } else {
        Recovery::Refuse
    };
    let store = match FileStore::open_with(&state_dir, recovery) {
        Ok(s) => s,
        Err(
            e @ (StoreError::Locked { .. }
            | StoreError::StateMissing { .. }
            | StoreError::Corrupt { .. }
            | StoreError::RecoveryFailed { .. }),
        ) => {
            eprintln!("switchyard: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e).context("opening the state directory"),
    };
    let options = parse_default_pools(&args.default_address_pools)?;
    let controller = Controller::open(
        Box::new(store),
        DriverRegistry::builtin(),
        Box::new(ChaCha20Rng::from_os_rng()),
        options,
    )
    .context("opening the controller state")?;

    let listener = bind_socket(&socket)?;
    let runtime = Runtime::start(RuntimeOptions {
        exe: std::env::current_exe().context("finding our own executable")?,
        state_dir: state_dir.clone(),
        offload: !args.no_offload,
        dns_upstreams: args.dns_upstream.clone(),
        dns_ttl: args.dns_ttl,
        busy_poll: std::time::Duration::from_micros(args.busy_poll_us),
        dns_busy_poll: std::time::Duration::from_micros(args.dns_busy_poll_us),
        socket: socket.clone(),
    })
    .context("starting the data plane")?;
    let daemon = Arc::new(Daemon {
        inner: Mutex::new(Inner {
            controller,
            runtime,
        }),
        state_dir: state_dir.clone(),
        socket: socket.clone(),
    });
    {
        let mut inner = daemon.lock();
        let Inner {
            controller,
            runtime,
        } = &mut *inner;
        runtime.restore(controller).context("restoring sandboxes")?;
    }
    tracing::info!(socket = %socket.display(), state = %state_dir.display(), "switchyard daemon ready");
    eprintln!(
        "switchyard daemon listening on {} (state in {})",
        socket.display(),
        state_dir.display()
    );

    let api = serve_api(Arc::clone(&daemon), listener)?;

    let signal = stop_signals.wait().context("waiting for a stop signal")?;
    tracing::info!(?signal, "stopping");
    let _ = std::fs::remove_file(&socket);
    api.stop();
    let mut inner = daemon.lock();
    inner.runtime.shutdown();
    eprintln!("switchyard daemon stopped ({signal:?}); containers keep their interfaces and come back on restart");
    Ok(ExitCode::SUCCESS)
}

impl Daemon {
    /// The control-plane lock. A panic while holding it must not wedge the
    /// daemon, so a poisoned lock is taken over.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the API on `listener` until the returned server is dropped. The
/// server bounds connections, buffering and time (see
/// [`crate::http::server`]); a quarter of our descriptors may go to API
/// connections, the rest stay for the data plane.
fn serve_api(daemon: Arc<Daemon>, listener: UnixListener) -> anyhow::Result<Server> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: limit is a valid rlimit to fill.
    let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    let config = ServerConfig::for_descriptor_limit(nofile);
    tracing::info!(
        max_connections = config.max_connections,
        request_timeout_s = config.request_timeout.as_secs(),
        "serving the API"
    );
    Server::start(listener, config, Arc::new(api::ApiHandler(daemon)))
        .context("starting the API thread")
}

/// Binds the API socket, mode 0600 from birth (bound under umask 077). The
/// default directory (`$XDG_RUNTIME_DIR/switchyard`, `/run/switchyard`, or
/// `/tmp/switchyard-UID` without XDG) is created 0700 and must be ours and
/// private: a predictable path another user made first is refused, not
/// trusted. A socket file left by a dead daemon is replaced; one a live
/// daemon answers on is not.
fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        if dir == paths::runtime_dir() {
            let meta =
                std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
            if meta.uid() != paths::euid() {
                anyhow::bail!(
                    "{} belongs to uid {}, not to us; remove it or pass --socket in a directory of your own",
                    dir.display(),
                    meta.uid()
                );
            }
            if meta.mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("making {} private", dir.display()))?;
            }
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another switchyard daemon is already serving {}; stop it or pass a different --socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    // Still single-threaded here, so the process-wide umask is ours to set
    // for the bind and put back.
    // SAFETY: umask has no preconditions.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting mode 0600 on {}", path.display()))?;
    Ok(listener)
}

/// Splits `--default-address-pool` values by family; a family not given
/// keeps its defaults.
fn parse_default_pools(args: &[String]) -> anyhow::Result<ControllerOptions> {
    let mut options = ControllerOptions::default();
    for a in args {
        let pool: DefaultPool = a
            .parse()
            .map_err(|e| anyhow::anyhow!("--default-address-pool {a}: {e}"))?;
        let list = if pool.base.is_ipv4() {
            &mut options.v4_pools
        } else {
            &mut options.v6_pools
        };
        list.get_or_insert_with(Vec::new).push(pool);
    }
    Ok(options)
}
