//! Model check: after any interleaving of record updates, every query is
//! answered exactly from the records as they are at that moment, as a
//! plain, obviously-correct model of the rules computes it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use proptest::prelude::*;
use switchyard_dns::{
    reverse_name, EndpointRecord, Family, NetworkPolicy, Outcome, Scope, Transport,
};

const NETS: [&str; 3] = ["n0", "n1", "n2"];
const NET_NAMES: [&str; 4] = ["front", "Back", "my.net", "web"];
const NAMES: [&str; 5] = ["web", "db", "API", "web.front", "x"];
const ALIASES: [&str; 4] = ["api", "www", "Web", "my"];
const V4: [&str; 4] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.1"];
const V6: [&str; 2] = ["fd00::1", "fd00::2"];

#[derive(Debug, Clone)]
enum Op {
    SetNetwork {
        net: usize,
        name: usize,
        names: bool,
        forward: bool,
    },
    RemoveNetwork {
        net: usize,
    },
    Upsert {
        ep: usize,
        net: usize,
        name: usize,
        aliases: Vec<usize>,
        v4: Option<usize>,
        v6: Option<usize>,
    },
    Remove {
        ep: usize,
    },
    Query {
        scope: Vec<usize>,
        qname: String,
        qtype: RecordType,
    },
}

/// Query names: record names, NAME.NETWORK forms, reverse names, strangers,
/// in mixed case.
fn qname() -> impl Strategy<Value = String> {
    let mut pool: Vec<String> = Vec::new();
    for n in NAMES.iter().chain(ALIASES.iter()) {
        pool.push(n.to_string());
        for net in NET_NAMES {
            pool.push(format!("{n}.{net}"));
        }
    }
    for a in V4.iter().chain(V6.iter()) {
        pool.push(reverse_name(a.parse().unwrap()));
    }
    pool.push("example.com".into());
    pool.push("10.0.0.in-addr.arpa".into());
    (prop::sample::select(pool), any::<u64>()).prop_map(|(name, case_bits)| {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if case_bits >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..3usize, 0..NET_NAMES.len(), any::<bool>(), any::<bool>())
            .prop_map(|(net, name, names, forward)| Op::SetNetwork { net, name, names, forward }),
        1 => (0..3usize).prop_map(|net| Op::RemoveNetwork { net }),
        2 => (
            0..6usize,
            0..3usize,
            0..NAMES.len(),
            prop::collection::vec(0..ALIASES.len(), 0..3),
            prop::option::of(0..V4.len()),
            prop::option::of(0..V6.len()),
        )
            .prop_map(|(ep, net, name, aliases, v4, v6)| Op::Upsert { ep, net, name, aliases, v4, v6 }),
        1 => (0..6usize).prop_map(|ep| Op::Remove { ep }),
        3 => (
            prop::collection::vec(0..3usize, 0..3),
            qname(),
            prop::sample::select(vec![RecordType::A, RecordType::AAAA, RecordType::PTR, RecordType::TXT]),
        )
            .prop_map(|(scope, qname, qtype)| Op::Query { scope, qname, qtype }),
    ]
}

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Answers(BTreeSet<String>),
    NoData,
    NxDomain,
    Forward,
}

#[derive(Default)]
struct Model {
    nets: BTreeMap<String, NetworkPolicy>,
    eps: BTreeMap<String, EndpointRecord>,
}

impl Model {
    fn expect(&self, scope: &[&str], qname: &str, qtype: RecordType) -> Expect {
        let mut named: Vec<&str> = Vec::new();
        let mut forward = false;
        for id in scope {
            if let Some(p) = self.nets.get(*id) {
                forward |= p.forward;
                if p.names && !named.contains(id) {
                    named.push(id);
                }
            }
        }
        let unknown = if forward {
            Expect::Forward
        } else {
            Expect::NxDomain
        };
        let q = qname.trim_end_matches('.').to_ascii_lowercase();

        let reverse: Option<IpAddr> = V4
            .iter()
            .chain(V6.iter())
            .map(|a| a.parse::<IpAddr>().unwrap())
            .find(|a| reverse_name(*a) == q);
        if let Some(addr) = reverse {
            let mut names = BTreeSet::new();
            for ep in self.eps.values() {
                if named.contains(&ep.network_id.as_str())
                    && (ep.ipv4.map(IpAddr::V4) == Some(addr)
                        || ep.ipv6.map(IpAddr::V6) == Some(addr))
                {
                    let net = &self.nets[&ep.network_id].name;
                    names.insert(ep.name.to_ascii_lowercase());
                    names.insert(format!("{}.{}", ep.name, net).to_ascii_lowercase());
                }
            }
            if names.is_empty() {
                return unknown;
            }
            return if qtype == RecordType::PTR {
                Expect::Answers(names)
            } else {
                Expect::NoData
            };
        }

        let has_name = |ep: &EndpointRecord, name: &str| {
            ep.name.eq_ignore_ascii_case(name)
                || ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        };
        let mut hits: Vec<&EndpointRecord> = self
            .eps
            .values()
            .filter(|ep| named.contains(&ep.network_id.as_str()) && has_name(ep, &q))
            .collect();
        if hits.is_empty() {
            let labels: Vec<&str> = q.split('.').collect();
            for split in (1..labels.len()).rev() {
                let prefix = labels[..split].join(".");
                let suffix = labels[split..].join(".");
                hits = self
                    .eps
                    .values()
                    .filter(|ep| {
                        named.contains(&ep.network_id.as_str())
                            && self.nets[&ep.network_id].name.eq_ignore_ascii_case(&suffix)
                            && has_name(ep, &prefix)
                    })
                    .collect();
                if !hits.is_empty() {
                    break;
                }
            }
        }
        if hits.is_empty() {
            return unknown;
        }
        let addrs: BTreeSet<String> = hits
            .iter()
            .flat_map(|ep| match qtype {
                RecordType::A => ep.ipv4.map(|a| a.to_string()),
                RecordType::AAAA => ep.ipv6.map(|a| a.to_string()),
                _ => None,
            })
            .collect();
        if addrs.is_empty() {
            Expect::NoData
        } else {
            Expect::Answers(addrs)
        }
    }
}

fn observed(outcome: Outcome, out: &[u8]) -> Result<Expect, TestCaseError> {
    match outcome {
        Outcome::Forward { .. } => Ok(Expect::Forward),
        Outcome::Drop(r) => Err(TestCaseError::fail(format!("dropped: {r:?}"))),
        Outcome::Reply { .. } => {
            let m = Message::from_vec(out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            match m.metadata.response_code {
                ResponseCode::NXDomain => Ok(Expect::NxDomain),
                ResponseCode::NoError if m.answers.is_empty() => Ok(Expect::NoData),
                ResponseCode::NoError => {
                    let mut items: Vec<String> =
                        v4_answers(&m).iter().map(|a| a.to_string()).collect();
                    items.extend(v6_answers(&m).iter().map(|a| a.to_string()));
                    items.extend(ptr_answers(&m).iter().map(|n| n.to_ascii_lowercase()));
                    let set: BTreeSet<String> = items.iter().cloned().collect();
                    prop_assert_eq!(set.len(), items.len(), "duplicate answers: {:?}", items);
                    Ok(Expect::Answers(set))
                }
                other => Err(TestCaseError::fail(format!("unexpected rcode {other:?}"))),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_query_answers_exactly_the_current_records(ops in prop::collection::vec(op(), 1..60)) {
        let mut lab = Lab::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::SetNetwork { net, name, names, forward } => {
                    let policy = NetworkPolicy { name: NET_NAMES[name].into(), names, forward };
                    lab.resolver.set_network(NETS[net], policy.clone());
                    model.nets.insert(NETS[net].into(), policy);
                }
                Op::RemoveNetwork { net } => {
                    lab.resolver.remove_network(NETS[net]);
                    model.nets.remove(NETS[net]);
                }
                Op::Upsert { ep, net, name, aliases, v4, v6 } => {
                    let record = EndpointRecord {
                        endpoint_id: format!("e{ep}"),
                        network_id: NETS[net].into(),
                        name: NAMES[name].into(),
                        aliases: aliases.iter().map(|&a| ALIASES[a].to_string()).collect(),
                        ipv4: v4.map(|i| V4[i].parse().unwrap()),
                        ipv6: v6.map(|i| V6[i].parse().unwrap()),
                    };
                    lab.resolver.upsert_endpoint(record.clone());
                    model.eps.insert(record.endpoint_id.clone(), record);
                }
                Op::Remove { ep } => {
                    lab.resolver.remove_endpoint(&format!("e{ep}"));
                    model.eps.remove(&format!("e{ep}"));
                }
                Op::Query { scope, qname, qtype } => {
                    let scope: Vec<&str> = scope.iter().map(|&i| NETS[i]).collect();
                    let expected = model.expect(&scope, &qname, qtype);
                    let outcome = lab.send(&scope, Transport::Tcp, &query(&qname, qtype));
                    let got = observed(outcome, &lab.out)?;
                    prop_assert_eq!(&got, &expected, "{} {:?} in {:?}", qname, qtype, scope);

                    if qtype == RecordType::A || qtype == RecordType::AAAA {
                        let family = if qtype == RecordType::A { Family::V4 } else { Family::V6 };
                        let looked_up: BTreeSet<String> = lab
                            .resolver
                            .lookup(&Scope::new(scope.iter().copied()), &qname, family)
                            .iter()
                            .map(|a| a.to_string())
                            .collect();
                        let want = match expected {
                            Expect::Answers(set) => set,
                            _ => BTreeSet::new(),
                        };
                        prop_assert_eq!(looked_up, want);
                    }
                }
            }
            prop_assert_eq!(lab.resolver.endpoint_count(), model.eps.len());
        }
    }
}
