//! Links and their impairments: latency, jitter, loss (independent or
//! bursty, Gilbert-Elliott), duplication, reordering, corruption, a rate
//! limit with a tail-drop queue, and an MTU.
//!
//! Every link has two directions, each with its own settings and state, so
//! asymmetric links (a slow uplink, loss one way) are one setting away.
//! Impairments are applied in a fixed order with a fixed number of draws
//! from the world's generator per frame, so a run replays exactly; a
//! direction with no impairment draws nothing at all.

use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use switchyard_switch::{Instant, PortId};

/// Index of a link in the world.
pub(crate) type LinkId = u32;

/// What sits at one end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// A container's interface (the NIC whose `link` is this link).
    Nic { container: u32 },
    /// A switch port; `None` while unplugged (host down, port removed).
    Port { host: u32, port: Option<PortId> },
}

/// What a link is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// A container interface to its host's switch (end 0 is the container).
    Nic,
    /// A cable between two hosts' switches, on one network's segment.
    Cable { network: String },
}

/// A named, two-way link. Links outlive what is plugged into them, so
/// settings survive restarts.
#[derive(Debug)]
pub(crate) struct Link {
    pub name: String,
    pub kind: LinkKind,
    pub ends: [End; 2],
    pub dirs: [Direction; 2],
    pub capture: Option<u32>,
}

/// How frames are lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Loss {
    /// Nothing is lost.
    #[default]
    None,
    /// Each frame is lost with this probability, independently.
    Random(f64),
    /// Bursty loss: a two-state Markov chain (Gilbert-Elliott). Before each
    /// frame the chain may change state; the frame is then lost with the
    /// probability of the state it is in.
    GilbertElliott {
        /// Probability of moving from the good to the bad state, per frame.
        p_good_to_bad: f64,
        /// Probability of moving from the bad back to the good state.
        p_bad_to_good: f64,
        /// Loss probability in the good state (often 0).
        loss_good: f64,
        /// Loss probability in the bad state (often 1).
        loss_bad: f64,
    },
}

/// Settings of one direction of a link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkConfig {
    /// Fixed propagation delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per frame (frames may
    /// overtake each other, as with netem).
    pub jitter: Duration,
    /// Loss model.
    pub loss: Loss,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay`, letting
    /// later frames overtake it.
    pub reorder: f64,
    /// How long a reordered frame is held back.
    pub reorder_delay: Duration,
    /// Probability that one bit of the frame's payload (past the Ethernet
    /// header) is flipped.
    pub corrupt: f64,
    /// Bits per second; `None` for no limit. Frames wait in a queue while
    /// the link is busy.
    pub rate_bps: Option<u64>,
    /// Most bytes waiting in the rate limiter's queue; beyond it frames are
    /// tail-dropped.
    pub queue_bytes: usize,
    /// Largest payload (bytes after the 14-byte Ethernet header) the link
    /// carries; longer frames are dropped. `None` for no limit.
    pub mtu: Option<usize>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_micros(10),
            jitter: Duration::ZERO,
            loss: Loss::None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(1),
            corrupt: 0.0,
            rate_bps: None,
            queue_bytes: 256 * 1024,
            mtu: None,
        }
    }
}

impl LinkConfig {
    /// A clean link with this latency.
    pub fn with_latency(latency: Duration) -> LinkConfig {
        LinkConfig {
            latency,
            ..LinkConfig::default()
        }
    }

    /// True when nothing but the fixed latency applies, so no random draw
    /// is needed.
    pub fn is_clean(&self) -> bool {
        self.jitter.is_zero()
            && matches!(self.loss, Loss::None)
            && self.duplicate <= 0.0
            && self.reorder <= 0.0
            && self.corrupt <= 0.0
            && self.rate_bps.is_none()
            && self.mtu.is_none()
    }

    /// Checks probabilities and rates, saying what to write instead.
    pub fn validate(&self) -> Result<(), String> {
        let p = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be a probability between 0 and 1, e.g. 0.05 for 5%; got {v}"
                ))
            }
        };
        p("duplicate", self.duplicate)?;
        p("reorder", self.reorder)?;
        p("corrupt", self.corrupt)?;
        match self.loss {
            Loss::None => {}
            Loss::Random(v) => p("loss", v)?,
            Loss::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                p("burst_loss.p_good_to_bad", p_good_to_bad)?;
                p("burst_loss.p_bad_to_good", p_bad_to_good)?;
                p("burst_loss.loss_good", loss_good)?;
                p("burst_loss.loss_bad", loss_bad)?;
            }
        }
        if self.rate_bps == Some(0) {
            return Err("rate must be above 0 bit/s; leave it out for an unlimited link".into());
        }
        if self.mtu.is_some_and(|m| m < 68) {
            return Err("mtu must be at least 68 bytes (the IPv4 minimum)".into());
        }
        Ok(())
    }
}

/// What happened to frames offered to one direction of a link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Frames handed to the link.
    pub offered: u64,
    /// Frames that reached the far end (duplicates included).
    pub delivered: u64,
    /// Frames lost by the loss model.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames held back to be overtaken.
    pub reordered: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Frames dropped because the rate limiter's queue was full.
    pub queue_dropped: u64,
    /// Frames dropped for exceeding the MTU.
    pub mtu_dropped: u64,
    /// Frames dropped by a partition.
    pub partitioned: u64,
    /// Frames dropped because nothing was attached at the far end (a
    /// crashed host or container, a removed port).
    pub no_carrier: u64,
}

/// Why a link refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkDrop {
    Lost,
    QueueFull,
    Mtu,
}

/// One copy of a frame the link will deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transit {
    pub delay: Duration,
    /// Flip this bit (index into the payload bits), if any.
    pub corrupt_bit: Option<u64>,
}

/// One direction: settings, state and counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Direction {
    pub config: LinkConfig,
    pub stats: LinkStats,
    /// Gilbert-Elliott: currently in the bad state.
    bad: bool,
    /// The rate limiter is busy sending until then.
    busy_until: Instant,
}

/// A uniform draw in `[0, 1)`.
#[inline]
fn unit(rng: &mut dyn RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl Direction {
    pub(crate) fn new(config: LinkConfig) -> Direction {
        Direction {
            config,
            ..Direction::default()
        }
    }

    /// Decides the fate of a frame of `len` bytes offered at `now`: up to
    /// two copies with their delays, or a drop.
    pub(crate) fn offer(
        &mut self,
        now: Instant,
        len: usize,
        rng: &mut dyn RngCore,
    ) -> Result<[Option<Transit>; 2], LinkDrop> {
        self.stats.offered += 1;
        let c = &self.config;
        if c.is_clean() {
            return Ok([
                Some(Transit {
                    delay: c.latency,
                    corrupt_bit: None,
                }),
                None,
            ]);
        }
        if let Some(mtu) = c.mtu {
            if len.saturating_sub(14) > mtu {
                self.stats.mtu_dropped += 1;
                return Err(LinkDrop::Mtu);
            }
        }
        let lost = match c.loss {
            Loss::None => false,
            Loss::Random(p) => unit(rng) < p,
            Loss::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = unit(rng);
                if self.bad {
                    if flip < p_bad_to_good {
                        self.bad = false;
                    }
                } else if flip < p_good_to_bad {
                    self.bad = true;
                }
                let p = if self.bad { loss_bad } else { loss_good };
                unit(rng) < p
            }
        };
        if lost {
            self.stats.lost += 1;
            return Err(LinkDrop::Lost);
        }
        let mut base = Duration::ZERO;
        if let Some(rate) = c.rate_bps {
            let now_ns = now.as_nanos();
            let busy = self.busy_until.as_nanos();
            let backlog_ns = busy.saturating_sub(now_ns);
            let backlog_bytes =
                (u128::from(backlog_ns) * u128::from(rate) / 8_000_000_000) as usize;
            if backlog_bytes + len > c.queue_bytes {
                self.stats.queue_dropped += 1;
                return Err(LinkDrop::QueueFull);
            }
            let tx_ns = (len as u128 * 8 * 1_000_000_000).div_ceil(u128::from(rate)) as u64;
            let start = busy.max(now_ns);
            self.busy_until = Instant::from_nanos(start + tx_ns);
            base = Duration::from_nanos(start + tx_ns - now_ns);
        }
        let copy = |stats: &mut LinkStats, rng: &mut dyn RngCore| {
            let mut delay = base + c.latency;
            if !c.jitter.is_zero() {
                let j = c.jitter.as_nanos() as u64;
                delay += Duration::from_nanos(rng.next_u64() % (j + 1));
            }
            if c.reorder > 0.0 && unit(rng) < c.reorder {
                stats.reordered += 1;
                delay += c.reorder_delay;
            }
            let mut corrupt_bit = None;
            if c.corrupt > 0.0 && unit(rng) < c.corrupt && len > 14 {
                stats.corrupted += 1;
                corrupt_bit = Some(rng.next_u64() % ((len as u64 - 14) * 8));
            }
            Transit { delay, corrupt_bit }
        };
        let first = copy(&mut self.stats, rng);
        let second = if c.duplicate > 0.0 && unit(rng) < c.duplicate {
            self.stats.duplicated += 1;
            Some(copy(&mut self.stats, rng))
        } else {
            None
        };
        Ok([Some(first), second])
    }
}

/// Flips one payload bit of an Ethernet frame.
pub(crate) fn corrupt(frame: &[u8], bit: u64) -> Vec<u8> {
    let mut bytes = frame.to_vec();
    let byte = 14 + (bit / 8) as usize;
    if let Some(b) = bytes.get_mut(byte) {
        *b ^= 1 << (bit % 8);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn clean_link_only_delays_and_draws_nothing() {
        let mut d = Direction::new(LinkConfig::with_latency(Duration::from_millis(3)));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let before = rng.clone().next_u64();
        let copies = d.offer(Instant::ZERO, 100, &mut rng).unwrap();
        assert_eq!(copies[0].unwrap().delay, Duration::from_millis(3));
        assert!(copies[1].is_none());
        assert_eq!(rng.next_u64(), before, "no draw was made");
    }

    #[test]
    fn random_loss_rate_is_close_to_the_probability() {
        let mut d = Direction::new(LinkConfig {
            loss: Loss::Random(0.2),
            ..LinkConfig::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let lost = (0..10_000)
            .filter(|_| d.offer(Instant::ZERO, 100, &mut rng).is_err())
            .count();
        assert!((1700..2300).contains(&lost), "{lost}");
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts() {
        let mut d = Direction::new(LinkConfig {
            loss: Loss::GilbertElliott {
                p_good_to_bad: 0.01,
                p_bad_to_good: 0.2,
                loss_good: 0.0,
                loss_bad: 1.0,
            },
            ..LinkConfig::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let outcomes: Vec<bool> = (0..20_000)
            .map(|_| d.offer(Instant::ZERO, 100, &mut rng).is_err())
            .collect();
        let losses = outcomes.iter().filter(|l| **l).count();
        let runs = outcomes.windows(2).filter(|w| !w[0] && w[1]).count();
        assert!(losses > 0);
        // Mean burst length 1/0.2 = 5 frames: far longer than independent loss.
        assert!(
            losses as f64 / runs as f64 > 3.0,
            "{losses} losses in {runs} bursts"
        );
    }

    #[test]
    fn rate_limit_queues_then_tail_drops() {
        let mut d = Direction::new(LinkConfig {
            latency: Duration::ZERO,
            rate_bps: Some(8_000_000), // 1 byte per microsecond
            queue_bytes: 2_500,
            ..LinkConfig::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let a = d.offer(Instant::ZERO, 1000, &mut rng).unwrap()[0].unwrap();
        let b = d.offer(Instant::ZERO, 1000, &mut rng).unwrap()[0].unwrap();
        assert_eq!(a.delay, Duration::from_micros(1000));
        assert_eq!(b.delay, Duration::from_micros(2000));
        assert_eq!(
            d.offer(Instant::ZERO, 1000, &mut rng),
            Err(LinkDrop::QueueFull)
        );
        assert_eq!(d.stats.queue_dropped, 1);
    }

    #[test]
    fn mtu_drops_long_frames() {
        let mut d = Direction::new(LinkConfig {
            mtu: Some(1000),
            ..LinkConfig::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        assert!(d.offer(Instant::ZERO, 1014, &mut rng).is_ok());
        assert_eq!(d.offer(Instant::ZERO, 1015, &mut rng), Err(LinkDrop::Mtu));
    }

    #[test]
    fn corrupt_flips_exactly_one_payload_bit() {
        let frame = vec![0u8; 20];
        let c = corrupt(&frame, 9);
        assert_eq!(c[15], 0b10);
        assert_eq!(c.iter().filter(|b| **b != 0).count(), 1);
    }
}
