//! Capabilities a container's commands keep: Docker's default set unless
//! `--cap-add`, `--cap-drop` or `--privileged` say otherwise.
//!
//! A root client that joins a sandbox would otherwise hand the command all
//! of its own capabilities — `CAP_SYS_ADMIN` to enter other namespaces or
//! unmount what hides the daemon's socket, `CAP_NET_ADMIN` over the host.
//! [`Capabilities::apply_in_child`] narrows the bounding set (so nothing
//! can be regained by executing a file with capabilities), clears the
//! inheritable and ambient sets and trims the effective and permitted ones;
//! a command running as uid 0 then gets exactly the bounding set on `exec`.
//! It makes only system calls, so it may run between `fork` and `exec`.

use serde::{Deserialize, Serialize};
use std::io;

/// Names of the capabilities, indexed by number (`CAP_` left off), as
/// `capabilities(7)` and Docker's `--cap-add` spell them.
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default set (moby `oci/caps/defaults.go`).
const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A set of capabilities, as a bit mask (bit N is capability N).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capabilities(pub u64);

/// The mask of every capability numbered up to `last`.
fn up_to(last: u32) -> u64 {
    if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`),
/// or the highest we have a name for when that cannot be read.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
}

impl Capabilities {
    /// Docker's default set: what `run` gives a command without flags.
    pub fn docker_default() -> Capabilities {
        Capabilities(
            DOCKER_DEFAULT
                .iter()
                .map(|n| 1u64 << number(n).expect("known name"))
                .fold(0, |a, b| a | b),
        )
    }

    /// Every capability (`--privileged`, `--cap-add ALL`).
    pub fn all() -> Capabilities {
        Capabilities(up_to(NAMES.len() as u32 - 1))
    }

    /// Docker's rules: `privileged` keeps everything; otherwise start from
    /// the default set (from nothing with `--cap-drop ALL`, from everything
    /// with `--cap-add ALL`), add `add`, remove `drop`. Names are
    /// case-insensitive and may carry the `CAP_` prefix.
    pub fn from_flags(
        privileged: bool,
        add: &[String],
        drop: &[String],
    ) -> Result<Capabilities, String> {
        if privileged {
            return Ok(Capabilities::all());
        }
        let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
        let mut set = if add.iter().any(is_all) {
            Capabilities::all().0
        } else if drop.iter().any(is_all) {
            0
        } else {
            Capabilities::docker_default().0
        };
        for name in add.iter().filter(|s| !is_all(s)) {
            set |= 1u64 << parse(name, "--cap-add")?;
        }
        for name in drop.iter().filter(|s| !is_all(s)) {
            set &= !(1u64 << parse(name, "--cap-drop")?);
        }
        Ok(Capabilities(set))
    }

    /// The set as names, lowest number first (what the daemon records).
    pub fn names(self) -> Vec<String> {
        (0..NAMES.len())
            .filter(|i| self.0 & (1u64 << i) != 0)
            .map(|i| NAMES[i].to_string())
            .collect()
    }

    /// The set back from [`Capabilities::names`].
    pub fn from_names(names: &[String]) -> Result<Capabilities, String> {
        let mut set = 0;
        for n in names {
            set |= 1u64 << parse(n, "capability")?;
        }
        Ok(Capabilities(set))
    }

    /// True when it holds every capability up to `last`: nothing to drop.
    pub fn covers(self, last: u32) -> bool {
        self.0 & up_to(last) == up_to(last)
    }

    /// Narrows the calling process to this set: bounding set first (that
    /// needs `CAP_SETPCAP`, still held), ambient and inheritable cleared,
    /// effective and permitted trimmed. `last` comes from [`last_cap`],
    /// read before `fork`. Only system calls: safe between `fork` and
    /// `exec` of a multi-threaded parent.
    pub fn apply_in_child(self, last: u32) -> io::Result<()> {
        for cap in 0..=last.min(63) {
            if self.0 & (1u64 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
                let e = io::Error::last_os_error();
                // EINVAL: the kernel does not know this one; nothing to drop.
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
        }
        // SAFETY: prctl with integer arguments; EINVAL on kernels without
        // ambient capabilities, which then have none to clear.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: capget fills two data structs for version 3.
        if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for (i, d) in data.iter_mut().enumerate() {
            let keep = (self.0 >> (32 * i)) as u32;
            d.effective &= keep;
            d.permitted &= keep;
            d.inheritable = 0;
        }
        // SAFETY: capset reads the header and two data structs.
        if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn number(name: &str) -> Option<u32> {
    let bare = name
        .strip_prefix("CAP_")
        .or_else(|| name.strip_prefix("cap_"))
        .unwrap_or(name);
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(bare))
        .map(|i| i as u32)
}

fn parse(name: &str, flag: &str) -> Result<u32, String> {
    number(name).ok_or_else(|| {
        format!(
            "{flag} {name}: unknown capability; use a name from capabilities(7) such as NET_ADMIN or SYS_PTRACE, or ALL"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_default_set_is_dockers() {
        assert_eq!(Capabilities::docker_default().0, 0xa80425fb);
    }

    #[test]
    fn cap_add_and_cap_drop_change_the_default_set() {
        let c = Capabilities::from_flags(false, &s(&["net_admin"]), &s(&["CAP_MKNOD"])).unwrap();
        assert_ne!(c.0 & (1 << 12), 0, "NET_ADMIN added");
        assert_eq!(c.0 & (1 << 27), 0, "MKNOD dropped");
        assert_ne!(c.0 & (1 << 13), 0, "NET_RAW kept");
    }

    #[test]
    fn cap_drop_all_keeps_only_what_is_added() {
        let c = Capabilities::from_flags(false, &s(&["NET_RAW"]), &s(&["ALL"])).unwrap();
        assert_eq!(c.names(), ["NET_RAW"]);
    }

    #[test]
    fn privileged_and_cap_add_all_keep_everything() {
        assert!(Capabilities::from_flags(true, &[], &[]).unwrap().covers(40));
        let c = Capabilities::from_flags(false, &s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap();
        assert_eq!(c.0 & (1 << 21), 0);
        assert!(!c.covers(40));
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_flag_named() {
        let e = Capabilities::from_flags(false, &s(&["NET_ADMN"]), &[]).unwrap_err();
        assert!(e.contains("--cap-add NET_ADMN"), "{e}");
    }

    #[test]
    fn names_round_trip() {
        let c = Capabilities::docker_default();
        assert_eq!(Capabilities::from_names(&c.names()).unwrap(), c);
    }
}
