//! The logic of Switchyard's embedded resolver, the server every sandbox
//! reaches at 127.0.0.11.
//!
//! This crate has no sockets, threads, clocks or randomness of its own: a
//! [`Resolver`] takes bytes, the current time and a random generator, and
//! returns what to send where ([`Outcome`]). The real-mode daemon drives it
//! from UDP and TCP sockets inside each sandbox's namespace; the simulator
//! drives it with virtual time and a seeded generator, and replays exactly.
//!
//! # What it answers
//!
//! * `NAME` and `NAME.NETWORK` for every endpoint's container name and
//!   `--alias`es, A and AAAA, case-insensitively (answers echo the
//!   question's case), but only on networks the asking sandbox is attached
//!   to ([`Scope`]).
//! * PTR for every endpoint address (`in-addr.arpa`, `ip6.arpa`), scoped the
//!   same way: the container name, then `NAME.NETWORK`.
//! * A name shared by several endpoints answers with all their addresses,
//!   rotated per query by the injected generator: basic load balancing that
//!   a simulation replays exactly.
//! * A name we know with no record of the asked type: NOERROR, no data.
//!
//! Everything else goes upstream if any network of the sandbox allows
//! forwarding ([`NetworkPolicy::forward`]). Docker's default `bridge` has no
//! names (`names: false`) and only forwards; `--internal` networks never
//! forward.
//!
//! # Decisions
//!
//! * **No forwarding means NXDOMAIN.** When none of a sandbox's networks may
//!   forward, an unknown name gets NXDOMAIN rather than REFUSED. glibc turns
//!   NXDOMAIN into `HOST_NOT_FOUND`/`EAI_NONAME` after one query, so
//!   `getent hosts example.com` fails at once; REFUSED (like SERVFAIL) makes
//!   it try every nameserver `attempts` times and report `EAI_AGAIN`, which
//!   many programs retry.
//! * **TTL 5 s by default.** Docker answers with 600 s, which keeps a stale
//!   address in client caches for ten minutes after a container restarts
//!   with a new IP; aardvark-dns answers with 0, which defeats caching
//!   entirely. Five seconds bounds staleness while still letting a burst of
//!   lookups hit a cache. Configurable through [`ResolverConfig::ttl`].
//! * **Truncation.** UDP replies honour the client's EDNS payload size
//!   (clamped to 512..=4096; 512 without EDNS). A local answer that does not
//!   fit is sent as the question alone with TC set, so the client retries
//!   over TCP, where replies go up to 65535 bytes. A UDP upstream reply with
//!   TC set is passed on as it is, for the same reason.
//! * **Upstream ids.** Every attempt gets a fresh id from the injected
//!   generator, unique among queries in flight. A reply is accepted only
//!   from the upstream it was sent to, over the same transport, with that id
//!   and the same question; anything else is dropped and counted (an
//!   off-path spoofer must guess all of it). The client's own id is restored
//!   in the reply.
//! * **Failover.** Upstreams are tried in order, each once; a timeout
//!   (default 2 s), SERVFAIL or REFUSED moves to the next, and when all have
//!   failed the client gets SERVFAIL. At most 1024 queries wait for
//!   upstreams by default; beyond that, SERVFAIL at once.
//! * **Wire format by hand.** Queries are parsed and replies written
//!   directly in the caller's reusable buffer, with no allocation per local
//!   answer. A local A answer costs about a third of what merely decoding
//!   the query and encoding the reply through `hickory_proto::op::Message`
//!   costs, which also allocates (`benches/resolve.rs` measures both).
//!   hickory-proto checks every reply in the tests instead.
//! * **Updates are incremental.** Records are changed one endpoint or
//!   network at a time ([`Resolver::upsert_endpoint`],
//!   [`Resolver::remove_endpoint`], [`Resolver::set_network`],
//!   [`Resolver::remove_network`]) and seen by the very next query.
//!
//! # Driving it
//!
//! ```
//! use std::time::Duration;
//! use switchyard_dns::{
//!     ClientToken, EndpointRecord, NetworkPolicy, Outcome, Resolver, ResolverConfig, Scope,
//!     Transport,
//! };
//! # struct Rng(u64);
//! # impl rand_core::RngCore for Rng {
//! #     fn next_u32(&mut self) -> u32 { self.next_u64() as u32 }
//! #     fn next_u64(&mut self) -> u64 { self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1); self.0 >> 11 }
//! #     fn fill_bytes(&mut self, dst: &mut [u8]) { for b in dst { *b = self.next_u32() as u8 } }
//! # }
//!
//! let mut resolver = Resolver::new(ResolverConfig::default());
//! resolver.set_network("n1", NetworkPolicy { name: "front".into(), names: true, forward: true });
//! resolver.upsert_endpoint(EndpointRecord {
//!     endpoint_id: "e1".into(),
//!     network_id: "n1".into(),
//!     name: "web".into(),
//!     aliases: vec![],
//!     ipv4: Some("172.18.0.2".parse().unwrap()),
//!     ipv6: None,
//! });
//!
//! // A query for "web", type A, as a stub resolver sends it.
//! let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01";
//! let mut out = Vec::new();
//! let outcome = resolver.handle_query(
//!     Duration::ZERO,
//!     &Scope::new(["n1"]),
//!     ClientToken(7),
//!     Transport::Udp,
//!     query,
//!     &mut Rng(1),
//!     &mut out,
//! );
//! assert_eq!(outcome, Outcome::Reply { client: ClientToken(7), transport: Transport::Udp });
//! assert_eq!(&out[out.len() - 4..], &[172, 18, 0, 2]);
//! ```

#![warn(missing_docs)]

mod answer;
mod forward;
mod hash;
mod query;
mod records;
mod resolv_conf;
mod resolver;
mod reverse;
mod tcp;
mod wire;

pub use records::{EndpointRecord, Family, NetworkPolicy, Scope};
pub use resolv_conf::{
    parse_resolv_conf, parse_resolv_conf_with, parse_upstream, UpstreamError, DNS_PORT,
    EMBEDDED_RESOLVER,
};
pub use resolver::{
    ClientToken, DropReason, Outcome, Resolver, ResolverConfig, ResolverStats, Transport,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_TTL, DEFAULT_UPSTREAM_TIMEOUT, MAX_IN_FLIGHT_CEILING,
    MAX_UPSTREAMS, UPSTREAM_SUSPECT_FOR,
};
pub use reverse::reverse_name;
pub use tcp::{tcp_frame, TcpDeframer, TcpFrameError, DEFAULT_DEFRAMER_LIMIT, LENGTH_PREFIX};
