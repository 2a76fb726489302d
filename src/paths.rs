//! Default locations of the daemon's socket and state, for root and for
//! ordinary users (XDG), shared by the daemon and its clients.

use std::path::PathBuf;

/// True when running as root (euid 0).
pub fn is_root() -> bool {
    euid() == 0
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where runtime files go: `/run/switchyard` as root,
/// `$XDG_RUNTIME_DIR/switchyard` otherwise (falling back to
/// `/tmp/switchyard-UID` when XDG_RUNTIME_DIR is unset).
pub fn runtime_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/run/switchyard");
    }
    match env_dir("XDG_RUNTIME_DIR") {
        Some(d) => d.join("switchyard"),
        None => PathBuf::from(format!("/tmp/switchyard-{}", euid())),
    }
}

/// The default API socket.
pub fn default_socket() -> PathBuf {
    runtime_dir().join("switchyard.sock")
}

/// The default state directory: `/var/lib/switchyard` as root,
/// `$XDG_DATA_HOME/switchyard` (or `~/.local/share/switchyard`) otherwise.
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/switchyard");
    }
    if let Some(d) = env_dir("XDG_DATA_HOME") {
        return d.join("switchyard");
    }
    match env_dir("HOME") {
        Some(h) => h.join(".local/share/switchyard"),
        None => runtime_dir().join("state"),
    }
}
