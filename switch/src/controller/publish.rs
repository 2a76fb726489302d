//! Docker's `run -p/--publish` and `--add-host` syntax: the model of a
//! published port and of an extra `/etc/hosts` entry, their parsers and
//! Docker's ways of printing them. Real mode and the simulator share it, so
//! it is plain data and std only.
//!
//! # What `-p` accepts (as `docker run -p` does)
//! `[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]`, where
//! - `CONTAINERPORT` is 1–65535 or a range `80-81`, and the protocol
//!   suffix is case-insensitive (`/` alone means tcp, as in Docker);
//! - `HOSTPORT` is 0–65535 (0 or empty: the daemon picks a free port), or a
//!   range of the same length as the container range, mapped pairwise;
//! - a host range with a *single* container port (`8000-8010:80`) is kept
//!   as one mapping with [`PortMapping::host_port_end`] set: the daemon picks
//!   one free host port in the range, as Docker does;
//! - `HOSTIP` is an IPv4 address, an IPv6 address in brackets
//!   (`[::1]:8080:80`, `[::1]::80`) or, as Docker splits at the last two
//!   colons, unbracketed when a host port follows (`::1:8080:80`,
//!   `::1::80`). Without it the port is published on every address, IPv4
//!   (`0.0.0.0`) and IPv6 (`::`); an explicit `0.0.0.0` means IPv4 only;
//! - Docker's long form `published=8080,target=80[,protocol=udp][,mode=host]`.
//!
//! Where Docker is lax we refuse with a message instead: `80/tcp/x` (Docker
//! drops `/x`), `1-2-3` (Docker reads `1-2`), `+80`, unknown long-form keys,
//! a host range starting at 0, and `sctp`, which Docker accepts but this
//! switch does not forward. Every error names the part that was wrong and
//! ends with the accepted forms.
//!
//! # What `--add-host` accepts
//! `NAME:IP`, `NAME=IP`, `NAME:host-gateway`, with IPv6 written as
//! `NAME:[::1]`, `NAME=::1` or `NAME:::1` (Docker splits at the first `=`,
//! else the first `:`). Unlike Docker, which only refuses an empty name or
//! one with a colon, NAME must be a hostname, since it goes into
//! `/etc/hosts`.

use super::error::{quoted, shown, Shown};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The forms `-p` accepts, ending every `-p` error message.
pub const PUBLISH_SYNTAX: &str = "[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp], \
     e.g. 80, 8080:80, 127.0.0.1:8080:80/udp, [::1]::80 or 8080-8081:80-81";

/// The forms `--add-host` accepts, ending every `--add-host` error message.
pub const ADD_HOST_SYNTAX: &str =
    "NAME:IP, NAME=IP or NAME:host-gateway, e.g. db:10.0.0.5, db=[fd00::5] or host.docker.internal:host-gateway";

/// The `--add-host` value that stands for the host's own address as the
/// container reaches it (its gateway), as in Docker.
pub const HOST_GATEWAY: &str = "host-gateway";

/// The transport of a published port. Docker also has `sctp`; the
/// gateway forwards only these two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP, Docker's default.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as Docker writes it after a port.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// Reads `tcp` or `udp` in any case (Docker lowercases the suffix), so
    /// `port web 80/UDP` and `-p 80/UDP` agree.
    pub fn from_name(name: &str) -> Option<Protocol> {
        if name.eq_ignore_ascii_case("tcp") {
            Some(Protocol::Tcp)
        } else if name.eq_ignore_ascii_case("udp") {
            Some(Protocol::Udp)
        } else {
            None
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container port published on the host: what `-p` asks for, and,
/// once the daemon has bound it, what `port` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host address to listen on; `None` means every address, IPv4
    /// (`0.0.0.0`) and IPv6 (`::`), Docker's default.
    pub host_ip: Option<IpAddr>,
    /// The host port; 0 asks the daemon to pick a free one. With
    /// [`host_port_end`](Self::host_port_end) set, the first port of the
    /// range to pick from.
    pub host_port: u16,
    /// `Some(end)` for `-p 8000-8010:80`: the daemon picks one free host
    /// port in `host_port..=end` (then `host_port > 0` and `end >
    /// host_port`). `None` for a single host port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_end: Option<u16>,
    /// The port inside the container, 1–65535.
    pub container_port: u16,
}

impl PortMapping {
    /// The host addresses this mapping listens on: `host_ip`, or both
    /// `0.0.0.0` and `::` when it is `None`.
    pub fn host_addrs(&self) -> impl Iterator<Item = IpAddr> {
        let (addrs, n) = match self.host_ip {
            Some(ip) => ([ip, ip], 1),
            None => (
                [
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                ],
                2,
            ),
        };
        addrs.into_iter().take(n)
    }

    /// This mapping in `-p` syntax, which [`parse_publish`] reads back as
    /// exactly this one mapping: `8080:80/tcp`, `127.0.0.1::80/udp`,
    /// `[::1]:8000-8010:80/tcp`. One line, so it suits error messages.
    pub fn publish_spec(&self) -> String {
        let mut s = String::new();
        if let Some(ip) = self.host_ip {
            match ip {
                IpAddr::V4(v4) => s.push_str(&v4.to_string()),
                IpAddr::V6(v6) => s.push_str(&format!("[{v6}]")),
            }
            s.push(':');
        }
        if self.host_port != 0 || self.host_port_end.is_some() {
            s.push_str(&self.host_port_text());
            s.push(':');
        } else if self.host_ip.is_some() {
            s.push(':');
        }
        s.push_str(&format!("{}/{}", self.container_port, self.protocol));
        s
    }

    /// The host port as `port` prints it: `8080`, or `8000-8010` while a
    /// range is still to be picked from.
    fn host_port_text(&self) -> String {
        match self.host_port_end {
            Some(end) => format!("{}-{end}", self.host_port),
            None => self.host_port.to_string(),
        }
    }
}

/// Joins an address and a port as Go's `net.JoinHostPort` does, which is
/// how Docker prints them: IPv6 in brackets.
fn join_host_port(ip: IpAddr, port: &str) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// The host side of a mapping as `docker port NAME 80` prints it, one
/// line per address: `0.0.0.0:8080` and `[::]:8080` for every address,
/// `127.0.0.1:8080` or `[::1]:8080` for one.
pub fn host_endpoints(m: &PortMapping) -> Vec<String> {
    let port = m.host_port_text();
    m.host_addrs().map(|ip| join_host_port(ip, &port)).collect()
}

/// A mapping as `docker port NAME` prints it, one line per address:
/// `80/tcp -> 0.0.0.0:8080` and `80/tcp -> [::]:8080` when it listens on
/// every address, one line for one address.
pub fn docker_port_lines(m: &PortMapping) -> Vec<String> {
    host_endpoints(m)
        .into_iter()
        .map(|host| format!("{}/{} -> {host}", m.container_port, m.protocol))
        .collect()
}

/// Docker's `port` lines for this mapping ([`docker_port_lines`]), joined
/// by newlines: two lines when `host_ip` is `None`. For a one-line form
/// (error messages) use [`PortMapping::publish_spec`].
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in docker_port_lines(self).iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(line)?;
        }
        Ok(())
    }
}

/// Which side of a mapping a port number was for, in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// `HOSTPORT`.
    Host,
    /// `CONTAINERPORT`.
    Container,
}

impl fmt::Display for PortRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortRole::Host => "host",
            PortRole::Container => "container",
        })
    }
}

/// A user string as an error echoes it: bare when it is plain, quoted and
/// escaped when it is empty or holds spaces or control characters, and cut
/// to a line either way.
fn echo(text: &str) -> Shown<'_> {
    if text.is_empty() || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        quoted(text)
    } else {
        shown(text)
    }
}

/// Why a `-p` or `--add-host` value was refused. Each message names the
/// part that was wrong and ends with the accepted forms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// `-p ""`.
    #[error("-p needs a port; use -p {PUBLISH_SYNTAX}")]
    Empty,
    /// Nothing after the last colon (`8080:`) or before the protocol
    /// (`/udp`).
    #[error("-p {}: no container port given; use -p {PUBLISH_SYNTAX}", echo(.spec))]
    MissingContainerPort {
        /// The whole value.
        spec: String,
    },
    /// Three ports, as in `8080:80:90`: the first would be a host address.
    #[error("-p {}: too many colons ({} is where a host IP would go); use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.ip))]
    TooManyColons {
        /// The whole value.
        spec: String,
        /// What stood where the host IP goes.
        ip: String,
    },
    /// The part before the host port is not an IP address.
    #[error("-p {}: {} is not an IP address{hint}; use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.ip))]
    InvalidHostIp {
        /// The whole value.
        spec: String,
        /// The part taken as the host IP.
        ip: String,
        /// A hint for the likely mistake, or empty.
        hint: &'static str,
    },
    /// A port or range that is not digits, or over 65535.
    #[error("-p {}: {role} port {} is not a port number (0-65535) or a range like 8080-8081{hint}; use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.text))]
    InvalidPort {
        /// The whole value.
        spec: String,
        /// Which port it was.
        role: PortRole,
        /// The text given for it.
        text: String,
        /// A hint for the likely mistake, or empty.
        hint: &'static str,
    },
    /// A range whose end is below its start (`81-80`).
    #[error("-p {}: {role} port range {} ends before it starts; write the lower port first; use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.text))]
    BackwardRange {
        /// The whole value.
        spec: String,
        /// Which side the range was on.
        role: PortRole,
        /// The range as given.
        text: String,
    },
    /// Container port 0, which nothing in the container can listen on.
    #[error("-p {}: container port 0 is not a port a container can listen on; give 1-65535; use -p {PUBLISH_SYNTAX}", echo(.spec))]
    ZeroContainerPort {
        /// The whole value.
        spec: String,
    },
    /// A host range starting at 0 (`0-10:80`); 0 means "any port", not a
    /// port.
    #[error("-p {}: host port range {} starts at 0; start it at 1, or leave the host port out to let the daemon pick one; use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.host))]
    HostRangeFromZero {
        /// The whole value.
        spec: String,
        /// The host range as given.
        host: String,
    },
    /// Host and container ranges of different lengths, the container side
    /// being a real range (`8080-8082:80-81`, `8080:80-81`).
    #[error("-p {}: host ports {} and container ports {} differ in number; give ranges of equal length, or one container port with a host range to let the daemon pick one host port from it; use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.host), echo(.container))]
    RangeLengthMismatch {
        /// The whole value.
        spec: String,
        /// The host side as given.
        host: String,
        /// The container side as given.
        container: String,
    },
    /// A protocol other than tcp or udp (including Docker's sctp), or more
    /// than one `/`.
    #[error("-p {}: protocol {} is not supported; end the value with /tcp or /udp (or nothing, for tcp); use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.protocol))]
    UnsupportedProtocol {
        /// The whole value.
        spec: String,
        /// What followed the first `/`.
        protocol: String,
    },
    /// A long-form field without `=` or with an empty key.
    #[error("-p {}: {} is not KEY=VALUE; write published=HOSTPORT,target=CONTAINERPORT[,protocol=tcp|udp], or use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.field))]
    LongFormField {
        /// The whole value.
        spec: String,
        /// The offending comma-separated field.
        field: String,
    },
    /// A long-form key other than published, target, protocol or mode.
    #[error("-p {}: unknown key {}; the keys are published, target, protocol and mode, or use -p {PUBLISH_SYNTAX}", echo(.spec), echo(.key))]
    LongFormKey {
        /// The whole value.
        spec: String,
        /// The unknown key.
        key: String,
    },
    /// `--add-host` without `:` or `=` between name and address.
    #[error("--add-host {}: expected NAME:IP; use --add-host {ADD_HOST_SYNTAX}", echo(.spec))]
    AddHostFormat {
        /// The whole value.
        spec: String,
    },
    /// An `--add-host` name that is not a hostname.
    #[error("--add-host {}: {} is not a valid host name: {reason}; use --add-host {ADD_HOST_SYNTAX}", echo(.spec), echo(.name))]
    AddHostName {
        /// The whole value.
        spec: String,
        /// The name part.
        name: String,
        /// What rule it broke.
        reason: &'static str,
    },
    /// An `--add-host` address that is neither an IP nor `host-gateway`.
    #[error("--add-host {}: {} is not an IP address or host-gateway{hint}; use --add-host {ADD_HOST_SYNTAX}", echo(.spec), echo(.ip))]
    AddHostIp {
        /// The whole value.
        spec: String,
        /// The address part (brackets removed).
        ip: String,
        /// A hint for the likely mistake, or empty.
        hint: &'static str,
    },
}

/// Parses one `-p/--publish` value into the mappings it stands for: one,
/// or one per port of a range (module docs list the forms). Never panics;
/// a range can yield up to 65,535 mappings, as in Docker.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, PublishError> {
    if spec.is_empty() {
        return Err(PublishError::Empty);
    }
    if spec.contains('=') {
        return parse_long_form(spec);
    }
    parse_short_form(spec, spec)
}

/// `published=8080,target=80,protocol=udp`, turned into
/// `8080:80/udp` and parsed, as Docker's CLI does.
fn parse_long_form(spec: &str) -> Result<Vec<PortMapping>, PublishError> {
    let (mut published, mut target, mut protocol) = ("", "", "tcp");
    for field in spec.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k, v),
            _ => {
                return Err(PublishError::LongFormField {
                    spec: spec.to_string(),
                    field: field.to_string(),
                })
            }
        };
        match key {
            "published" => published = value,
            "target" => target = value,
            "protocol" => protocol = value,
            // Docker's `run` ignores the mode (host/ingress is a swarm
            // notion); every published port here is a host port.
            "mode" => {}
            _ => {
                return Err(PublishError::LongFormKey {
                    spec: spec.to_string(),
                    key: key.to_string(),
                })
            }
        }
    }
    parse_short_form(spec, &format!("{published}:{target}/{protocol}"))
}

/// The short form `text`; errors quote `spec`, what the user wrote.
fn parse_short_form(spec: &str, text: &str) -> Result<Vec<PortMapping>, PublishError> {
    // Docker's split: the container part after the last colon, the host
    // port before it, and everything before that is the host IP (so an
    // unbracketed IPv6 address works when a host port follows).
    let (rest, container_text) = match text.rsplit_once(':') {
        Some((rest, c)) => (Some(rest), c),
        None => (None, text),
    };
    let (ip_text, host_text) = match rest {
        None => (None, ""),
        // `[::1]:80`: an address where the host port goes; taking it whole
        // as the host port gives a message with the fix, where Docker's
        // split would complain about an address `[:`.
        Some(rest)
            if rest.starts_with('[')
                && rest.rfind(']').is_some_and(|i| !rest[i..].contains(':')) =>
        {
            (None, rest)
        }
        Some(rest) => match rest.rsplit_once(':') {
            Some((ip, host)) => (Some(ip), host),
            None => (None, rest),
        },
    };

    let (port_text, protocol) = split_protocol(spec, container_text)?;
    let host_ip = match ip_text {
        None | Some("") => None,
        Some(ip) => Some(parse_host_ip(spec, ip)?),
    };
    if port_text.is_empty() {
        return Err(PublishError::MissingContainerPort {
            spec: spec.to_string(),
        });
    }
    let (c_start, c_end) = parse_port_range(spec, PortRole::Container, port_text)?;
    if c_start == 0 {
        return Err(PublishError::ZeroContainerPort {
            spec: spec.to_string(),
        });
    }
    let host = if host_text.is_empty() {
        None
    } else {
        Some(parse_port_range(spec, PortRole::Host, host_text)?)
    };
    if let Some((h_start, h_end)) = host {
        if h_start == 0 && h_end > 0 {
            return Err(PublishError::HostRangeFromZero {
                spec: spec.to_string(),
                host: host_text.to_string(),
            });
        }
        if h_end - h_start != c_end - c_start && c_start != c_end {
            return Err(PublishError::RangeLengthMismatch {
                spec: spec.to_string(),
                host: host_text.to_string(),
                container: port_text.to_string(),
            });
        }
    }

    let count = usize::from(c_end - c_start) + 1;
    let mut out = Vec::with_capacity(count);
    for offset in 0..=(c_end - c_start) {
        let (host_port, host_port_end) = match host {
            None => (0, None),
            // One container port, a host range: pick one from it.
            Some((h_start, h_end)) if c_start == c_end && h_end > h_start => (h_start, Some(h_end)),
            // Equal lengths (checked above): pairwise.
            Some((h_start, _)) => (h_start + offset, None),
        };
        out.push(PortMapping {
            protocol,
            host_ip,
            host_port,
            host_port_end,
            container_port: c_start + offset,
        });
    }
    Ok(out)
}

/// Splits `80/udp` into the port part and the protocol (tcp when there is
/// no suffix, or only `/`, as in Docker).
fn split_protocol<'a>(spec: &str, text: &'a str) -> Result<(&'a str, Protocol), PublishError> {
    let Some((port, proto)) = text.split_once('/') else {
        return Ok((text, Protocol::Tcp));
    };
    if proto.is_empty() {
        return Ok((port, Protocol::Tcp));
    }
    match Protocol::from_name(proto) {
        Some(p) => Ok((port, p)),
        None => Err(PublishError::UnsupportedProtocol {
            spec: spec.to_string(),
            protocol: proto.to_string(),
        }),
    }
}

/// The host IP part: an address, or one in brackets.
fn parse_host_ip(spec: &str, text: &str) -> Result<IpAddr, PublishError> {
    let inner = match text.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']'),
        None => Some(text),
    };
    if let Some(ip) = inner.and_then(|t| t.parse::<IpAddr>().ok()) {
        return Ok(ip);
    }
    if text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b':')
    {
        return Err(PublishError::TooManyColons {
            spec: spec.to_string(),
            ip: text.to_string(),
        });
    }
    let hint = if text.starts_with('[') && !text.ends_with(']') {
        " (the closing ']' is missing)"
    } else if text.contains(':') && !text.starts_with('[') {
        " (write an IPv6 address in brackets, e.g. [::1]:8080:80)"
    } else {
        ""
    };
    Err(PublishError::InvalidHostIp {
        spec: spec.to_string(),
        ip: text.to_string(),
        hint,
    })
}

/// `80` or `80-81`, inclusive, start <= end.
fn parse_port_range(spec: &str, role: PortRole, text: &str) -> Result<(u16, u16), PublishError> {
    let bad = |hint: &'static str| PublishError::InvalidPort {
        spec: spec.to_string(),
        role,
        text: text.to_string(),
        hint,
    };
    let number = |t: &str| -> Option<u16> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Leading zeros are fine (Go's ParseUint takes them); only the
        // value must fit.
        let digits = t.trim_start_matches('0');
        if digits.len() > 5 {
            return None;
        }
        if digits.is_empty() {
            return Some(0);
        }
        digits.parse::<u16>().ok()
    };
    let hint = || -> &'static str {
        if role == PortRole::Host && text.contains('/') {
            " (put /tcp or /udp after the container port)"
        } else if role == PortRole::Host
            && (text.starts_with('[') || text.parse::<IpAddr>().is_ok())
        {
            " (to give only a host IP, leave the host port empty: IP::CONTAINERPORT)"
        } else {
            ""
        }
    };
    let (start, end) = match text.split_once('-') {
        None => {
            let p = number(text).ok_or_else(|| bad(hint()))?;
            (p, p)
        }
        Some((a, b)) => {
            let start = number(a).ok_or_else(|| bad(hint()))?;
            let end = number(b).ok_or_else(|| bad(hint()))?;
            (start, end)
        }
    };
    if end < start {
        return Err(PublishError::BackwardRange {
            spec: spec.to_string(),
            role,
            text: text.to_string(),
        });
    }
    Ok((start, end))
}

/// One `--add-host NAME:IP` entry: a line the container's `/etc/hosts`
/// gets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExtraHost {
    /// The host name, checked by [`parse_add_host`].
    pub name: String,
    /// The address it resolves to.
    pub target: ExtraHostTarget,
}

/// What an `--add-host` name points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraHostTarget {
    /// `host-gateway`: the host as the container reaches it, which the
    /// daemon fills in (the gateway of the container's network).
    HostGateway,
    /// A fixed address.
    Ip(IpAddr),
}

impl fmt::Display for ExtraHostTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtraHostTarget::HostGateway => f.write_str(HOST_GATEWAY),
            ExtraHostTarget::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// `NAME:IP` (or `NAME:host-gateway`), the form Docker stores and
/// [`parse_add_host`] reads back.
impl fmt::Display for ExtraHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.target)
    }
}

/// Parses one `--add-host` value (module docs list the forms): splits at
/// the first `=`, else the first `:`, checks the name is a hostname and
/// the rest an IP address (brackets allowed) or `host-gateway`.
pub fn parse_add_host(spec: &str) -> Result<ExtraHost, PublishError> {
    let Some((name, value)) = spec.split_once('=').or_else(|| spec.split_once(':')) else {
        return Err(PublishError::AddHostFormat {
            spec: spec.to_string(),
        });
    };
    if let Err(reason) = validate_hostname(name) {
        return Err(PublishError::AddHostName {
            spec: spec.to_string(),
            name: name.to_string(),
            reason,
        });
    }
    if value == HOST_GATEWAY {
        return Ok(ExtraHost {
            name: name.to_string(),
            target: ExtraHostTarget::HostGateway,
        });
    }
    let inner = match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(inner) => inner,
        None => value,
    };
    match inner.parse::<IpAddr>() {
        Ok(ip) => Ok(ExtraHost {
            name: name.to_string(),
            target: ExtraHostTarget::Ip(ip),
        }),
        Err(_) => Err(PublishError::AddHostIp {
            spec: spec.to_string(),
            ip: inner.to_string(),
            hint: if inner.is_empty() {
                " (nothing follows the name)"
            } else if inner.eq_ignore_ascii_case(HOST_GATEWAY) {
                " (write host-gateway in lower case)"
            } else {
                ""
            },
        }),
    }
}

/// A hostname as `/etc/hosts` takes it: dot-separated labels of 1–63
/// letters, digits, `-` and `_`, no label starting or ending with `-`,
/// 253 characters in all (RFC 1123, with the underscore people use).
fn validate_hostname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a dot at either end)");
        }
        if label.len() > 63 {
            return Err("a dot-separated label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("use letters, digits, '-', '_' and '.' only");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
