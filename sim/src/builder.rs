//! Building a world: the seed, default link settings, switch tunables, and
//! what to record.

use crate::link::LinkConfig;
use crate::world::Sim;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use switchyard_dns::ResolverConfig;
use switchyard_switch::BridgeConfig;

/// Settings fixed when a world is built.
#[derive(Clone, Debug)]
pub(crate) struct SimConfig {
    pub nic_link: LinkConfig,
    pub cable_link: LinkConfig,
    pub bridge: BridgeConfig,
    pub resolver: ResolverConfig,
    pub record_deliveries: bool,
    pub explain: bool,
}

/// Builds a [`Sim`]. Everything has a default; the seed is 1 unless set
/// (never OS entropy).
#[derive(Clone, Debug)]
pub struct SimBuilder {
    seed: u64,
    config: SimConfig,
}

impl Default for SimBuilder {
    fn default() -> Self {
        SimBuilder {
            seed: 1,
            config: SimConfig {
                nic_link: LinkConfig::with_latency(Duration::from_micros(10)),
                cable_link: LinkConfig::with_latency(Duration::from_micros(200)),
                bridge: BridgeConfig::default(),
                resolver: ResolverConfig::default(),
                record_deliveries: false,
                explain: false,
            },
        }
    }
}

impl SimBuilder {
    /// The seed of the world's one generator; every other source of
    /// randomness (controllers, stacks, links, the FDB hash) derives from it.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Default settings of container interfaces' links (10 µs, clean).
    pub fn container_links(mut self, config: LinkConfig) -> Self {
        self.config.nic_link = config;
        self
    }

    /// Default settings of cables between hosts (200 µs, clean).
    pub fn cable_links(mut self, config: LinkConfig) -> Self {
        self.config.cable_link = config;
        self
    }

    /// Switch tunables (ageing, FDB capacity, frame limit); the hash seed
    /// is replaced by one drawn from the world's generator.
    pub fn bridge(mut self, config: BridgeConfig) -> Self {
        self.config.bridge = config;
        self
    }

    /// Resolver settings (TTL, upstream timeout); upstreams come from
    /// [`Sim::add_upstream_zone`].
    pub fn resolver(mut self, config: ResolverConfig) -> Self {
        self.config.resolver = config;
        self
    }

    /// Keeps every delivered frame (time, host, port, bytes), so
    /// [`check_determinism`](crate::check_determinism) can show where two
    /// runs part. Costs memory proportional to the traffic.
    pub fn record_deliveries(mut self, on: bool) -> Self {
        self.config.record_deliveries = on;
        self
    }

    /// Keeps the switch's explanation of every frame (`--explain`).
    pub fn explain(mut self, on: bool) -> Self {
        self.config.explain = on;
        self
    }

    /// The seed this builder will use.
    pub fn seed_value(&self) -> u64 {
        self.seed
    }

    /// An empty world at time zero.
    pub fn build(self) -> Sim {
        let rng = ChaCha8Rng::seed_from_u64(self.seed);
        Sim::from_parts(self.seed, rng, self.config)
    }
}

impl Sim {
    /// A builder with seed 1 and default settings.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }
}
