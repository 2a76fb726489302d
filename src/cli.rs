//! The command-line surface (README.md, "Command line"): it mirrors
//! `docker network` so habits carry over.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Switchyard: a userspace virtual switch for Docker's Container Network
/// Model, and a deterministic network simulator that runs the same switch.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `switchyard=debug`.
    #[arg(long, global = true, env = "SWITCHYARD_LOG", default_value = "warn")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the daemon's API socket is.
#[derive(Debug, Clone, Args)]
pub struct SocketArg {
    /// The daemon's API socket (default: /run/switchyard/switchyard.sock as
    /// root, $XDG_RUNTIME_DIR/switchyard/switchyard.sock otherwise).
    #[arg(long, env = "SWITCHYARD_SOCKET")]
    pub socket: Option<PathBuf>,
}

/// Output format of listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// A readable table.
    #[default]
    Table,
    /// JSON, for scripts.
    Json,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: controller, switch data plane, DNS, API socket.
    Daemon(DaemonArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Create a container sandbox and run a command in it.
    Run(RunArgs),
    /// Run a command inside an existing container's namespaces.
    Exec(ExecArgs),
    /// List containers.
    Ps(PsArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Show a container's published ports.
    Port(PortArgs),
    /// Rename a container (its DNS name follows at once).
    Rename(RenameArgs),
    /// Adopt a network namespace created elsewhere as a container.
    Attach(AttachArgs),
    /// Teaching labs and scenarios in the deterministic simulator.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Internal: namespace helpers started by the daemon and the client.
    #[command(hide = true, name = "__internal")]
    Internal(InternalArgs),
}

/// `switchyard daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where state is kept (default: /var/lib/switchyard as root,
    /// $XDG_DATA_HOME/switchyard otherwise).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub socket: SocketArg,
    /// Shared store for multi-host networks (etcd://HOST:PORT); not
    /// available yet.
    #[arg(long)]
    pub store: Option<String>,
    /// Upstream DNS server for names the embedded resolver does not own
    /// (repeatable, IP[:PORT]); default: the host's /etc/resolv.conf.
    #[arg(long = "dns-upstream")]
    pub dns_upstream: Vec<String>,
    /// TTL of the embedded resolver's answers, in seconds.
    #[arg(long, default_value_t = 5)]
    pub dns_ttl: u32,
    /// Open TAP devices without virtio-net headers and offloads (for
    /// measuring what offloads are worth).
    #[arg(long)]
    pub no_offload: bool,
    /// Keep the data plane polling this many microseconds after the last
    /// frame before it sleeps: faster request/response between containers,
    /// at the cost of CPU (0 = off; see benches/README.md).
    #[arg(long, default_value_t = 0, value_name = "US")]
    pub busy_poll_us: u64,
    /// The same for the DNS server thread.
    #[arg(long, default_value_t = 0, value_name = "US")]
    pub dns_busy_poll_us: u64,
    /// Docker-style default address pool, `base=CIDR,size=N` (repeatable;
    /// replaces the defaults; only read when the state is first created).
    #[arg(long = "default-address-pool")]
    pub default_address_pools: Vec<String>,
    /// When state.json is missing, unreadable or damaged, start from the
    /// previous copy (state.json.prev) instead of refusing to start; a
    /// damaged state.json is kept as state.json.damaged.
    #[arg(long)]
    pub recover_from_prev: bool,
}

/// `switchyard network ...`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(NetworkLsArgs),
    /// Show networks in detail.
    Inspect(NetworkInspectArgs),
    /// Remove networks.
    #[command(alias = "remove")]
    Rm(NetworkRmArgs),
    /// Connect a container to a network.
    Connect(NetworkConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(NetworkDisconnectArgs),
}

/// `network create`.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Network name.
    pub name: String,
    /// Driver: bridge (default); host and null are predefined.
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form (one IPv4, one IPv6).
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Gateway address, inside a --subnet.
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Sub-range for dynamic addresses, inside a --subnet.
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Reserved address NAME=IP.
    #[arg(long = "aux-address")]
    pub aux_address: Vec<String>,
    /// Give the network an IPv6 subnet too.
    #[arg(long)]
    pub ipv6: bool,
    /// No route out of the network, no DNS forwarding.
    #[arg(long)]
    pub internal: bool,
    /// Driver option K=V.
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Label K=V.
    #[arg(long)]
    pub label: Vec<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `network ls`.
#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Filter KEY=VALUE: driver, name, id, scope, type.
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Only print ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `network inspect`.
#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    /// Networks (name, id or id prefix).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// `json` (default; Docker-shaped), `table`, or a template such as
    /// `{{.IPAM.Config[0].Subnet}}` (a dotted path into the JSON).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `network rm`.
#[derive(Debug, Args)]
pub struct NetworkRmArgs {
    /// Networks (name, id or id prefix).
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `network connect`.
#[derive(Debug, Args)]
pub struct NetworkConnectArgs {
    /// Network.
    pub network: String,
    /// Container.
    pub container: String,
    /// Static IPv4 address.
    #[arg(long)]
    pub ip: Option<String>,
    /// Static IPv6 address.
    #[arg(long)]
    pub ip6: Option<String>,
    /// Network-scoped DNS alias (repeatable).
    #[arg(long)]
    pub alias: Vec<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `network disconnect`.
#[derive(Debug, Args)]
pub struct NetworkDisconnectArgs {
    /// Network.
    pub network: String,
    /// Container.
    pub container: String,
    /// Also remove endpoints of containers that no longer exist.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Container name (also its hostname and DNS name).
    #[arg(long)]
    pub name: String,
    /// Network: a network name, `host`, `none` or `container:OTHER`.
    #[arg(long, default_value = "bridge")]
    pub network: String,
    /// Static IPv4 address on that network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Static IPv6 address on that network.
    #[arg(long)]
    pub ip6: Option<String>,
    /// Network-scoped DNS alias (repeatable).
    #[arg(long)]
    pub alias: Vec<String>,
    /// Publish a container port on the host (repeatable), as Docker's
    /// `-p`: `[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]`, e.g. `80`
    /// (a free host port on every address), `8080:80`,
    /// `127.0.0.1:8080:80/udp`, `[::1]::80` (IPv6 in brackets, the host
    /// port picked), ranges of equal length `8080-8081:80-81`, a host range
    /// to pick one port from `8000-8010:80`, or the long form
    /// `published=8080,target=80,protocol=udp`. Without HOSTIP the port is
    /// published on every IPv4 and IPv6 address.
    #[arg(
        short = 'p',
        long,
        value_name = "[HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]"
    )]
    pub publish: Vec<String>,
    /// Add a line to the container's /etc/hosts (repeatable), as Docker's
    /// `--add-host`: `NAME:IP`, `NAME=IP`, IPv6 as `NAME:[::1]` or
    /// `NAME=::1`, or `NAME:host-gateway` for the host as the container
    /// reaches it (e.g. `host.docker.internal:host-gateway`).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when the command exits.
    #[arg(long)]
    pub rm: bool,
    /// Add a capability to Docker's default set (repeatable; e.g.
    /// NET_ADMIN, or ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from it (repeatable; ALL drops every one not
    /// added back with --cap-add).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Keep every capability. The command can then undo the container's
    /// isolation (unmount what hides the daemon, enter other namespaces).
    #[arg(long)]
    pub privileged: bool,
    /// `host`: share the host's PID namespace (see its processes) instead
    /// of getting one of its own.
    #[arg(long, value_name = "host")]
    pub pid: Option<String>,
    #[command(flatten)]
    pub socket: SocketArg,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Container.
    pub container: String,
    #[command(flatten)]
    pub socket: SocketArg,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Only print ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Containers.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove even if its command is still running (kills it).
    #[arg(short = 'f', long)]
    pub force: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// Container.
    pub container: String,
    /// Only this container port: `80`, `80/tcp`, `53/udp` (tcp when no
    /// protocol is given).
    pub port: Option<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container.
    pub container: String,
    /// Its new name.
    pub new_name: String,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Name for the adopted container.
    pub name: String,
    /// Path of the network namespace, e.g. /run/netns/foo or /proc/PID/ns/net.
    #[arg(long)]
    pub netns: PathBuf,
    /// Network to connect it to.
    #[arg(long, default_value = "bridge")]
    pub network: String,
    /// Static IPv4 address on that network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Network-scoped DNS alias (repeatable).
    #[arg(long)]
    pub alias: Vec<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// `lab ...`.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Run a lab file in the simulator and check its expectations.
    Run(LabRunArgs),
    /// Show the state of a lab at a virtual time.
    Show(LabShowArgs),
    /// Run a lab twice (or over many seeds) and compare digests.
    Check(LabCheckArgs),
}

/// `lab run`.
#[derive(Debug, Args)]
pub struct LabRunArgs {
    /// The lab's TOML file.
    pub file: PathBuf,
    /// Seed for all randomness (default: the file's, else 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write one pcap per captured port/link into this directory.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Stop at this virtual time (e.g. 30s, 500ms).
    #[arg(long)]
    pub until: Option<String>,
    /// Print, per frame, why the switch sent it where it went.
    #[arg(long)]
    pub explain: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `lab show`.
#[derive(Debug, Args)]
pub struct LabShowArgs {
    /// The lab's TOML file.
    pub file: PathBuf,
    /// Virtual time to stop at (e.g. 2s).
    #[arg(long)]
    pub at: String,
    /// What to show: `mac HOST`, `arp CONTAINER`, `addr CONTAINER`,
    /// `ipam HOST`, `counters HOST`.
    #[arg(required = true, num_args = 1..=2)]
    pub what: Vec<String>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `lab check`.
#[derive(Debug, Args)]
pub struct LabCheckArgs {
    /// The lab's TOML file.
    pub file: PathBuf,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many consecutive seeds.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
}

/// Hidden helper entry points (re-executed from our own binary so that
/// namespace changes happen in a single-threaded process).
#[derive(Debug, Args)]
pub struct InternalArgs {
    /// The helper and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["switchyard", "run", "--name", "web"];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["--", "true"]);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn run_takes_add_host_and_publish_repeatedly_and_keeps_them_as_typed() {
        let a = run_args(&[
            "--add-host",
            "db:10.0.0.5",
            "--add-host=gw:host-gateway",
            "-p",
            "[::1]:8080:80",
            "--publish",
            "53/udp",
        ]);
        assert_eq!(a.add_host, vec!["db:10.0.0.5", "gw:host-gateway"]);
        assert_eq!(a.publish, vec!["[::1]:8080:80", "53/udp"]);
        assert!(run_args(&[]).add_host.is_empty());
    }
}
