//! The client subcommands: each is one or two API calls to the daemon and
//! a table (or JSON) on stdout. Mistakes exit 1 with one line saying what
//! was wrong; daemon faults exit 3.

use crate::api::{
    Attachment, ConnectRequest, ContainerCreateRequest, ContainerInfo, DisconnectRequest,
    ErrorBody, PREFIX,
};
use crate::cli::{
    Format, NetworkCommand, NetworkConnectArgs, NetworkCreateArgs, NetworkDisconnectArgs,
    NetworkInspectArgs, NetworkLsArgs, NetworkRmArgs, PortArgs, PsArgs, RenameArgs, RmArgs,
    SocketArg,
};
use crate::http::{self, percent_encode, CallError};
use crate::output::{self, short_id, table};
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use switchyard_switch::controller::publish::{
    docker_port_lines, host_endpoints, PortMapping, Protocol,
};

/// Why a client command failed, and so its exit status.
#[derive(Debug)]
pub enum ClientError {
    /// The request was wrong (exit 1).
    User(String),
    /// The daemon or the system failed (exit 3).
    Internal(String),
}

impl ClientError {
    /// Prints the one-line reason and returns the exit status.
    pub fn report(self) -> ExitCode {
        match self {
            ClientError::User(m) => {
                eprintln!("switchyard: {m}");
                ExitCode::from(1)
            }
            ClientError::Internal(m) => {
                eprintln!("switchyard: internal error: {m}");
                ExitCode::from(3)
            }
        }
    }
}

/// Result of a client command.
pub type ClientResult<T = ()> = Result<T, ClientError>;

/// A connection target for API calls.
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// The daemon at `--socket`/`SWITCHYARD_SOCKET`, else the default.
    pub fn new(arg: &SocketArg) -> Client {
        Client {
            socket: arg
                .socket
                .clone()
                .unwrap_or_else(crate::paths::default_socket),
        }
    }

    /// Calls the daemon; maps error responses to [`ClientError`].
    pub fn call(&self, method: &str, route: &str, body: Option<&Value>) -> ClientResult<Value> {
        let target = format!("{PREFIX}{route}");
        // A 503 comes only from the API server shedding a connection
        // before any handler saw the request (docs/api.md): nothing was
        // applied, so even a POST may go again, after a short pause.
        let mut pauses = [50, 100, 200, 400, 800].into_iter();
        let resp = loop {
            let resp = http::call(&self.socket, method, &target, body)
                .map_err(|e| self.call_error(method, route, e))?;
            match (resp.status, pauses.next()) {
                (503, Some(ms)) => std::thread::sleep(std::time::Duration::from_millis(ms)),
                _ => break resp,
            }
        };
        let value: Value = if resp.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body).map_err(|e| {
                ClientError::Internal(format!("daemon sent a body that is not JSON: {e}"))
            })?
        };
        if (200..300).contains(&resp.status) {
            return Ok(value);
        }
        let err: ErrorBody = serde_json::from_value(value).unwrap_or(ErrorBody {
            message: format!("daemon answered HTTP {}", resp.status),
            kind: "internal".into(),
        });
        Err(if err.kind == "user" {
            ClientError::User(err.message)
        } else {
            ClientError::Internal(err.message)
        })
    }
}

impl Client {
    /// Says what became of a request that got no answer: whether it can
    /// have been applied, and how to find out.
    fn call_error(&self, method: &str, route: &str, e: CallError) -> ClientError {
        let at = self.socket.display();
        let unknown = if method == "GET" {
            "it changed nothing; retry".to_string()
        } else {
            format!(
                "it may have been applied: check with `{}` before retrying",
                check_command(route)
            )
        };
        match e {
            CallError::Connect(e) => ClientError::User(format!(
                "cannot reach the switchyard daemon at {at} ({e}); start it with `switchyard daemon` \
                 or point --socket / SWITCHYARD_SOCKET at a running one"
            )),
            CallError::NotSent(e) => ClientError::Internal(format!(
                "the switchyard daemon at {at} closed the connection before the whole request was sent ({e}); \
                 it was not applied: retry"
            )),
            CallError::NoReply(e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        format!("none within {} s", http::REPLY_TIMEOUT.as_secs())
                    }
                    _ => e.to_string(),
                };
                ClientError::Internal(format!(
                    "sent {method} {route} to the switchyard daemon at {at} but got no reply ({why}); {unknown}"
                ))
            }
            CallError::BadReply(m) => ClientError::Internal(format!(
                "sent {method} {route} to the switchyard daemon at {at} but could not read its reply ({m}); {unknown}"
            )),
        }
    }
}

/// The command that shows whether a request to `route` took effect.
fn check_command(route: &str) -> String {
    let parts: Vec<&str> = route
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        ["networks", name, "connect" | "disconnect"] => {
            format!("switchyard network inspect {}", http::percent_decode(name))
        }
        ["networks", ..] => "switchyard network ls".into(),
        _ => "switchyard ps".into(),
    }
}

/// Parses an IPv4 address argument.
pub fn parse_ipv4(flag: &str, s: &Option<String>) -> ClientResult<Option<Ipv4Addr>> {
    s.as_deref()
        .map(|v| {
            v.parse().map_err(|_| {
                ClientError::User(format!(
                    "{flag} {v:?} is not an IPv4 address; write e.g. 172.18.0.10"
                ))
            })
        })
        .transpose()
}

/// Parses an IPv6 address argument.
pub fn parse_ipv6(flag: &str, s: &Option<String>) -> ClientResult<Option<Ipv6Addr>> {
    s.as_deref()
        .map(|v| {
            v.parse().map_err(|_| {
                ClientError::User(format!(
                    "{flag} {v:?} is not an IPv6 address; write e.g. fd00::10"
                ))
            })
        })
        .transpose()
}

fn parse_kv(flag: &str, items: &[String]) -> ClientResult<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ClientError::User(format!("{flag} {kv:?}: write KEY=VALUE")))
        })
        .collect()
}

/// Runs a `network` subcommand.
pub fn network(cmd: NetworkCommand) -> ClientResult {
    match cmd {
        NetworkCommand::Create(a) => network_create(a),
        NetworkCommand::Ls(a) => network_ls(a),
        NetworkCommand::Inspect(a) => network_inspect(a),
        NetworkCommand::Rm(a) => network_rm(a),
        NetworkCommand::Connect(a) => network_connect(a),
        NetworkCommand::Disconnect(a) => network_disconnect(a),
    }
}

fn network_create(a: NetworkCreateArgs) -> ClientResult {
    let cidr = |flag: &str, v: &String| -> ClientResult<Value> {
        v.parse::<ipnetwork::IpNetwork>()
            .map(|n| json!(n.to_string()))
            .map_err(|_| {
                ClientError::User(format!(
                    "{flag} {v:?} is not a CIDR; write e.g. 10.1.0.0/16"
                ))
            })
    };
    let subnets = a
        .subnet
        .iter()
        .map(|s| cidr("--subnet", s))
        .collect::<ClientResult<Vec<_>>>()?;
    let ranges = a
        .ip_range
        .iter()
        .map(|s| cidr("--ip-range", s))
        .collect::<ClientResult<Vec<_>>>()?;
    let gateways = a
        .gateway
        .iter()
        .map(|g| {
            g.parse::<IpAddr>()
                .map(|ip| json!(ip))
                .map_err(|_| ClientError::User(format!("--gateway {g:?} is not an IP address")))
        })
        .collect::<ClientResult<Vec<_>>>()?;
    let aux = parse_kv("--aux-address", &a.aux_address)?
        .into_iter()
        .map(|(k, v)| {
            v.parse::<IpAddr>()
                .map(|ip| (k.clone(), json!(ip)))
                .map_err(|_| {
                    ClientError::User(format!("--aux-address {k}={v}: {v:?} is not an IP address"))
                })
        })
        .collect::<ClientResult<serde_json::Map<_, _>>>()?;
    let spec = json!({
        "name": a.name,
        "driver": a.driver,
        "subnets": subnets,
        "gateways": gateways,
        "ip_ranges": ranges,
        "aux_addresses": aux,
        "ipv6": a.ipv6,
        "internal": a.internal,
        "options": parse_kv("-o", &a.opt)?,
        "labels": parse_kv("--label", &a.label)?,
    });
    let created = Client::new(&a.socket).call("POST", "/networks", Some(&spec))?;
    println!("{}", created["Id"].as_str().unwrap_or_default());
    Ok(())
}

fn network_ls(a: NetworkLsArgs) -> ClientResult {
    let query: Vec<String> = a
        .filter
        .iter()
        .map(|f| format!("filter={}", percent_encode(f)))
        .collect();
    let route = if query.is_empty() {
        "/networks".to_string()
    } else {
        format!("/networks?{}", query.join("&"))
    };
    let list = Client::new(&a.socket).call("GET", &route, None)?;
    let nets = list.as_array().cloned().unwrap_or_default();
    if a.quiet {
        for n in &nets {
            println!("{}", short_id(n["Id"].as_str().unwrap_or_default()));
        }
        return Ok(());
    }
    if a.format == Format::Json {
        println!("{}", output::json(&list));
        return Ok(());
    }
    let rows = nets
        .iter()
        .map(|n| {
            let subnets: Vec<&str> = n["IPAM"]["Config"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["Subnet"].as_str())
                .collect();
            vec![
                short_id(n["Id"].as_str().unwrap_or_default()).to_string(),
                n["Name"].as_str().unwrap_or_default().to_string(),
                n["Driver"].as_str().unwrap_or_default().to_string(),
                n["Scope"].as_str().unwrap_or_default().to_string(),
                if subnets.is_empty() {
                    "-".into()
                } else {
                    subnets.join(",")
                },
                n["Containers"]
                    .as_object()
                    .map(|c| c.len())
                    .unwrap_or(0)
                    .to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "NETWORK ID",
                "NAME",
                "DRIVER",
                "SCOPE",
                "SUBNET",
                "CONTAINERS"
            ],
            rows
        )
    );
    Ok(())
}

fn network_inspect(a: NetworkInspectArgs) -> ClientResult {
    let client = Client::new(&a.socket);
    let mut views = Vec::new();
    for name in &a.names {
        views.push(client.call("GET", &format!("/networks/{}", percent_encode(name)), None)?);
    }
    match a.format.as_deref() {
        None | Some("json") => println!("{}", output::json(&Value::Array(views))),
        Some("table") => {
            for v in &views {
                print_network_table(v);
            }
        }
        Some(template) => {
            for v in &views {
                println!(
                    "{}",
                    output::render_template(template, v).map_err(ClientError::User)?
                );
            }
        }
    }
    Ok(())
}

fn print_network_table(v: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    println!(
        "{} ({}), driver {}, segment {}, mtu {}{}",
        s(&v["Name"]),
        short_id(v["Id"].as_str().unwrap_or_default()),
        s(&v["Driver"]),
        v["Switchyard"]["Segment"],
        v["Switchyard"]["MTU"],
        if v["Internal"].as_bool() == Some(true) {
            ", internal"
        } else {
            ""
        }
    );
    for c in v["IPAM"]["Config"].as_array().into_iter().flatten() {
        println!("  subnet {} gateway {}", s(&c["Subnet"]), s(&c["Gateway"]));
    }
    let ports = v["Switchyard"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let rows = v["Containers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, c)| {
            let name = s(&c["Name"]);
            let p = ports.get(&name).cloned().unwrap_or(Value::Null);
            let n = |k: &str| {
                p[k].as_u64()
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "-".into())
            };
            vec![
                name,
                s(&c["IPv4Address"]),
                s(&c["MacAddress"]),
                n("rx_frames"),
                n("tx_frames"),
                n("dropped"),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "CONTAINER",
                "IPV4",
                "MAC",
                "RX FRAMES",
                "TX FRAMES",
                "DROPPED"
            ],
            rows
        )
    );
}

fn network_rm(a: NetworkRmArgs) -> ClientResult {
    let client = Client::new(&a.socket);
    let mut first_err = None;
    for name in &a.names {
        match client.call(
            "DELETE",
            &format!("/networks/{}", percent_encode(name)),
            None,
        ) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                // Like Docker: report each failure, go on with the rest.
                match &e {
                    ClientError::User(m) | ClientError::Internal(m) => eprintln!("switchyard: {m}"),
                }
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        None => Ok(()),
        Some(ClientError::User(_)) => Err(ClientError::User(
            "some networks were not removed (see above)".into(),
        )),
        Some(e) => Err(e),
    }
}

fn network_connect(a: NetworkConnectArgs) -> ClientResult {
    let req = ConnectRequest {
        container: a.container,
        ip: parse_ipv4("--ip", &a.ip)?,
        ip6: parse_ipv6("--ip6", &a.ip6)?,
        aliases: a.alias,
    };
    let body = serde_json::to_value(req).expect("serialises");
    Client::new(&a.socket).call(
        "POST",
        &format!("/networks/{}/connect", percent_encode(&a.network)),
        Some(&body),
    )?;
    Ok(())
}

fn network_disconnect(a: NetworkDisconnectArgs) -> ClientResult {
    let req = DisconnectRequest {
        container: a.container,
        force: a.force,
    };
    let body = serde_json::to_value(req).expect("serialises");
    Client::new(&a.socket).call(
        "POST",
        &format!("/networks/{}/disconnect", percent_encode(&a.network)),
        Some(&body),
    )?;
    Ok(())
}

/// Fetches one container.
pub fn container(client: &Client, key: &str) -> ClientResult<ContainerInfo> {
    let v = client.call("GET", &format!("/containers/{}", percent_encode(key)), None)?;
    serde_json::from_value(v)
        .map_err(|e| ClientError::Internal(format!("unexpected container body: {e}")))
}

/// Creates a container sandbox through the daemon.
pub fn create_container(
    client: &Client,
    req: &ContainerCreateRequest,
) -> ClientResult<ContainerInfo> {
    let body = serde_json::to_value(req).expect("serialises");
    let v = client.call("POST", "/containers", Some(&body))?;
    serde_json::from_value(v)
        .map_err(|e| ClientError::Internal(format!("unexpected container body: {e}")))
}

fn attachment_summary(a: &Attachment) -> String {
    let ip = a.ipv4.as_deref().or(a.ipv6.as_deref()).unwrap_or("-");
    if a.ifname.is_empty() {
        a.network.clone()
    } else {
        format!("{}:{}={}", a.network, a.ifname, ip)
    }
}

/// `ps`.
pub fn ps(a: PsArgs) -> ClientResult {
    let v = Client::new(&a.socket).call("GET", "/containers", None)?;
    if a.format == Format::Json {
        println!("{}", output::json(&v));
        return Ok(());
    }
    let list: Vec<ContainerInfo> = serde_json::from_value(v)
        .map_err(|e| ClientError::Internal(format!("unexpected container list: {e}")))?;
    if a.quiet {
        for c in &list {
            println!("{}", short_id(&c.id));
        }
        return Ok(());
    }
    let rows = list
        .iter()
        .map(|c| {
            let command = c
                .command
                .as_ref()
                .map(|p| {
                    let cmd = p.command.join(" ");
                    match p.exit_code {
                        Some(code) => format!("{cmd} (exited {code})"),
                        None => cmd,
                    }
                })
                .unwrap_or_else(|| "-".into());
            vec![
                short_id(&c.id).to_string(),
                c.name.clone(),
                c.mode.clone(),
                c.status.clone(),
                c.networks
                    .iter()
                    .map(attachment_summary)
                    .collect::<Vec<_>>()
                    .join(" "),
                ports_summary(&c.ports),
                command,
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "CONTAINER ID",
                "NAME",
                "MODE",
                "STATUS",
                "NETWORKS",
                "PORTS",
                "COMMAND"
            ],
            rows
        )
    );
    Ok(())
}

/// Published ports as Docker's `ps` shows them: `0.0.0.0:8080->80/tcp,
/// [::]:8080->80/tcp`; `-` for none.
fn ports_summary(ports: &[PortMapping]) -> String {
    if ports.is_empty() {
        return "-".into();
    }
    ports
        .iter()
        .flat_map(|m| {
            host_endpoints(m)
                .into_iter()
                .map(move |host| format!("{host}->{}/{}", m.container_port, m.protocol))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rm`.
pub fn rm(a: RmArgs) -> ClientResult {
    let client = Client::new(&a.socket);
    let mut failed = None;
    for name in &a.names {
        let route = format!(
            "/containers/{}{}",
            percent_encode(name),
            if a.force { "?force=1" } else { "" }
        );
        match client.call("DELETE", &route, None) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                match &e {
                    ClientError::User(m) | ClientError::Internal(m) => eprintln!("switchyard: {m}"),
                }
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        None => Ok(()),
        Some(ClientError::User(_)) => Err(ClientError::User(
            "some containers were not removed (see above)".into(),
        )),
        Some(e) => Err(e),
    }
}

/// `port NAME [PORT[/PROTO]]`: the container's published ports as
/// `docker port` prints them (nothing for a container without any; an
/// error for an unknown container or an unpublished PORT, as Docker).
pub fn port(a: PortArgs) -> ClientResult {
    let c = container(&Client::new(&a.socket), &a.container)?;
    let lines =
        format_port_lines(&a.container, &c.ports, a.port.as_deref()).map_err(ClientError::User)?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// The output of `switchyard port NAME [PORT[/PROTO]]`, line by line,
/// exactly as `docker port` prints it for `mappings` (the container's
/// bound ports):
/// - without `filter`, one `80/tcp -> 0.0.0.0:8080` line per mapping and
///   host address (`0.0.0.0` and `[::]` for a mapping on every address);
/// - with `filter` (`80`, `80/tcp`, `53/udp`; tcp when no protocol is
///   given), only the host side of that port's mappings: `0.0.0.0:8080`
///   and `[::]:8080`.
///
/// Lines are in Docker's natural order (numbers compared as numbers), so
/// by container port, then protocol, then host address, IPv4 first. An
/// unpublished port gives Docker's `No public port '81/tcp' published for
/// web` (the filter as typed; Docker's `Error: ` prefix is left to the
/// caller, which prefixes its own), a filter that is no port number says
/// so. `container` is the name as the user typed it, for those messages.
pub fn format_port_lines(
    container: &str,
    mappings: &[PortMapping],
    filter: Option<&str>,
) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = match filter {
        None => mappings.iter().flat_map(docker_port_lines).collect(),
        Some(wanted) => {
            let (port, proto) = wanted.split_once('/').unwrap_or((wanted, ""));
            let port: u16 = port
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| port.parse().ok())
                .flatten()
                .ok_or_else(|| {
                    format!(
                        "invalid port ({port}): give a container port 1-65535, optionally \
                         with /tcp or /udp, e.g. `switchyard port {container} 80` or `53/udp`"
                    )
                })?;
            let proto = if proto.is_empty() {
                Some(Protocol::Tcp)
            } else {
                Protocol::from_name(proto)
            };
            let hosts: Vec<String> = mappings
                .iter()
                .filter(|m| Some(m.protocol) == proto && m.container_port == port)
                .flat_map(host_endpoints)
                .collect();
            if hosts.is_empty() {
                return Err(format!(
                    "No public port '{wanted}' published for {container}"
                ));
            }
            hosts
        }
    };
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

/// Docker's `sortorder.NaturalLess` as an ordering: runs of digits compare
/// as numbers (fewer leading zeros first when equal), digits sort before
/// other bytes, other bytes compare bytewise.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (start_a, start_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (na, nb) = (&a[start_a..i], &b[start_b..j]);
        let by_number = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
        if by_number != Ordering::Equal {
            return by_number;
        }
        // The same number: the one with fewer leading zeros first.
        if start_a != start_b {
            return start_a.cmp(&start_b);
        }
    }
    a.len().cmp(&b.len())
}

/// `rename`.
pub fn rename(a: RenameArgs) -> ClientResult {
    let body = json!({ "name": a.new_name });
    Client::new(&a.socket).call(
        "POST",
        &format!("/containers/{}/rename", percent_encode(&a.container)),
        Some(&body),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    /// A stand-in daemon answering successive connections with `answers`;
    /// returns how many requests it saw.
    fn fake_daemon(
        socket: &std::path::Path,
        answers: Vec<Response>,
    ) -> std::thread::JoinHandle<usize> {
        let listener = UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            let mut seen = 0;
            for answer in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "request cut short");
                    got.extend_from_slice(&buf[..n]);
                }
                seen += 1;
                s.write_all(&answer.to_bytes()).unwrap();
            }
            seen
        })
    }

    #[test]
    fn a_503_from_a_shedding_daemon_is_retried_and_the_next_answer_used() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let busy = Response::error(503, "limit of 16 open connections", "internal");
        let ok = Response::json(200, &json!({"done": true}));
        let daemon = fake_daemon(&socket, vec![busy.clone(), busy, ok]);
        let client = Client { socket };
        let got = client.call("POST", "/networks", Some(&json!({}))).unwrap();
        assert_eq!(got["done"], true);
        assert_eq!(daemon.join().unwrap(), 3);
    }

    #[test]
    fn a_daemon_that_stays_overloaded_is_reported_after_a_few_retries() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let busy = Response::error(503, "limit of 16 open connections", "internal");
        let daemon = fake_daemon(&socket, vec![busy; 6]);
        let client = Client { socket };
        match client.call("GET", "/networks", None) {
            Err(ClientError::Internal(m)) => assert!(m.contains("limit of 16"), "{m}"),
            other => panic!("expected the 503's message, got {other:?}"),
        }
        assert_eq!(daemon.join().unwrap(), 6);
    }

    #[test]
    fn the_check_hint_names_the_command_that_shows_the_outcome() {
        assert_eq!(check_command("/containers"), "switchyard ps");
        assert_eq!(check_command("/containers/a?force=1"), "switchyard ps");
        assert_eq!(check_command("/networks"), "switchyard network ls");
        assert_eq!(
            check_command("/networks/my%20net/connect"),
            "switchyard network inspect my net"
        );
    }

    fn mapping(proto: Protocol, host_ip: Option<&str>, host: u16, container: u16) -> PortMapping {
        PortMapping {
            protocol: proto,
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port: host,
            host_port_end: None,
            container_port: container,
        }
    }

    /// `-p 8080:80 -p 127.0.0.1:8443:443 -p 5353:53/udp -p 9000:80`, given
    /// out of order.
    fn web_ports() -> Vec<PortMapping> {
        vec![
            mapping(Protocol::Udp, None, 5353, 53),
            mapping(Protocol::Tcp, Some("127.0.0.1"), 8443, 443),
            mapping(Protocol::Tcp, None, 8080, 80),
            mapping(Protocol::Tcp, Some("::1"), 9000, 80),
        ]
    }

    #[test]
    fn port_without_a_filter_lists_every_line_by_container_port_then_protocol() {
        assert_eq!(
            format_port_lines("web", &web_ports(), None).unwrap(),
            vec![
                "53/udp -> 0.0.0.0:5353",
                "53/udp -> [::]:5353",
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> [::1]:9000",
                "80/tcp -> [::]:8080",
                "443/tcp -> 127.0.0.1:8443",
            ]
        );
    }

    #[test]
    fn port_with_a_filter_prints_only_the_host_side_of_that_port() {
        assert_eq!(
            format_port_lines("web", &web_ports(), Some("80")).unwrap(),
            vec!["0.0.0.0:8080", "[::1]:9000", "[::]:8080"]
        );
        assert_eq!(
            format_port_lines("web", &web_ports(), Some("80/tcp")).unwrap(),
            format_port_lines("web", &web_ports(), Some("80")).unwrap()
        );
        assert_eq!(
            format_port_lines("web", &web_ports(), Some("53/udp")).unwrap(),
            vec!["0.0.0.0:5353", "[::]:5353"]
        );
    }

    #[test]
    fn port_filters_take_the_protocol_in_any_case() {
        assert_eq!(
            format_port_lines("web", &web_ports(), Some("53/UDP")).unwrap(),
            vec!["0.0.0.0:5353", "[::]:5353"]
        );
    }

    #[test]
    fn an_unpublished_port_gives_dockers_message_with_the_filter_as_typed() {
        assert_eq!(
            format_port_lines("web", &web_ports(), Some("81/tcp")),
            Err("No public port '81/tcp' published for web".to_string())
        );
        assert_eq!(
            format_port_lines("web", &web_ports(), Some("53")),
            Err("No public port '53' published for web".to_string()),
            "53 means 53/tcp, and only 53/udp is published"
        );
        assert_eq!(
            format_port_lines("web", &web_ports(), Some("80/sctp")),
            Err("No public port '80/sctp' published for web".to_string())
        );
    }

    #[test]
    fn a_filter_that_is_no_port_number_is_refused() {
        for filter in ["http", "", "+80", "65536", "/tcp"] {
            let err = format_port_lines("web", &web_ports(), Some(filter)).unwrap_err();
            assert!(err.starts_with("invalid port ("), "{filter}: {err}");
        }
    }

    #[test]
    fn a_container_without_ports_prints_nothing() {
        assert_eq!(format_port_lines("web", &[], None), Ok(vec![]));
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers_and_puts_digits_first() {
        let mut lines = vec![
            "443/tcp", "80/udp", "080/tcp", "80/tcp", "8/tcp", "[::]:1", "0:1",
        ];
        lines.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            lines,
            vec!["0:1", "8/tcp", "80/tcp", "80/udp", "080/tcp", "443/tcp", "[::]:1"]
        );
        assert_eq!(natural_cmp("a10", "a9"), Ordering::Greater);
        assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    }
}
