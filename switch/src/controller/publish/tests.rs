use super::*;
use proptest::prelude::*;

fn one(spec: &str) -> PortMapping {
    let got = parse_publish(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    assert_eq!(got.len(), 1, "{spec} gave {got:?}");
    got[0]
}

fn tcp(host_ip: Option<IpAddr>, host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        protocol: Protocol::Tcp,
        host_ip,
        host_port,
        host_port_end: None,
        container_port,
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn a_container_port_alone_publishes_on_every_address_with_a_port_the_daemon_picks() {
    assert_eq!(one("80"), tcp(None, 0, 80));
}

#[test]
fn host_port_and_container_port() {
    assert_eq!(one("8080:80"), tcp(None, 8080, 80));
}

#[test]
fn an_ipv4_host_address() {
    assert_eq!(one("127.0.0.1:8080:80"), tcp(ip("127.0.0.1"), 8080, 80));
}

#[test]
fn an_empty_host_port_with_an_address_lets_the_daemon_pick() {
    assert_eq!(one("127.0.0.1::80"), tcp(ip("127.0.0.1"), 0, 80));
}

#[test]
fn an_explicit_0_0_0_0_is_ipv4_only_not_every_address() {
    assert_eq!(one("0.0.0.0:8080:80"), tcp(ip("0.0.0.0"), 8080, 80));
}

#[test]
fn a_bracketed_ipv6_host_address() {
    assert_eq!(one("[::1]:8080:80"), tcp(ip("::1"), 8080, 80));
    assert_eq!(one("[::1]::80"), tcp(ip("::1"), 0, 80));
    assert_eq!(one("[fd00::5]:53:53/udp").protocol, Protocol::Udp);
}

#[test]
fn an_unbracketed_ipv6_address_works_when_a_host_port_part_follows_as_in_docker() {
    assert_eq!(one("::1:8080:80"), tcp(ip("::1"), 8080, 80));
    assert_eq!(one("::1::80"), tcp(ip("::1"), 0, 80));
    assert_eq!(one("fe80::1:443:443"), tcp(ip("fe80::1"), 443, 443));
}

#[test]
fn a_bracketed_ipv4_address_is_accepted_as_go_accepts_it() {
    assert_eq!(one("[127.0.0.1]:8080:80"), tcp(ip("127.0.0.1"), 8080, 80));
}

#[test]
fn empty_host_parts_are_accepted_as_in_docker() {
    assert_eq!(one(":8080:80"), tcp(None, 8080, 80));
    assert_eq!(one(":80"), tcp(None, 0, 80));
    assert_eq!(one("::80"), tcp(None, 0, 80));
}

#[test]
fn the_protocol_suffix_is_case_insensitive_and_a_bare_slash_means_tcp() {
    assert_eq!(one("53/udp").protocol, Protocol::Udp);
    assert_eq!(one("53/UDP").protocol, Protocol::Udp);
    assert_eq!(one("80/tcp").protocol, Protocol::Tcp);
    assert_eq!(one("80/"), tcp(None, 0, 80));
}

#[test]
fn leading_zeros_are_read_as_go_reads_them() {
    assert_eq!(one("08080:080"), tcp(None, 8080, 80));
    assert_eq!(one("0:80"), tcp(None, 0, 80));
}

#[test]
fn equal_ranges_map_pairwise() {
    let got = parse_publish("127.0.0.1:8080-8082:80-82/udp").unwrap();
    let want: Vec<_> = (0..3)
        .map(|i| PortMapping {
            protocol: Protocol::Udp,
            host_ip: ip("127.0.0.1"),
            host_port: 8080 + i,
            host_port_end: None,
            container_port: 80 + i,
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_container_range_alone_gets_picked_host_ports() {
    assert_eq!(
        parse_publish("80-81").unwrap(),
        vec![tcp(None, 0, 80), tcp(None, 0, 81)]
    );
}

#[test]
fn a_host_range_with_one_container_port_picks_one_host_port_from_it() {
    let m = one("8000-8010:80");
    assert_eq!(m.host_port, 8000);
    assert_eq!(m.host_port_end, Some(8010));
    assert_eq!(m.container_port, 80);
}

#[test]
fn a_one_port_range_is_a_single_port() {
    assert_eq!(one("8080-8080:80-80"), tcp(None, 8080, 80));
}

#[test]
fn the_whole_port_space_is_one_range() {
    let got = parse_publish("1-65535").unwrap();
    assert_eq!(got.len(), 65535);
    assert_eq!(got.last().unwrap().container_port, 65535);
}

#[test]
fn the_long_form_is_read_as_docker_reads_it() {
    assert_eq!(
        one("published=8080,target=80,protocol=udp,mode=host"),
        PortMapping {
            protocol: Protocol::Udp,
            ..tcp(None, 8080, 80)
        }
    );
    assert_eq!(one("target=80"), tcp(None, 0, 80));
}

#[test]
fn an_empty_value_is_refused() {
    assert_eq!(parse_publish(""), Err(PublishError::Empty));
}

#[test]
fn three_ports_are_too_many_colons() {
    let err = parse_publish("8080:80:90").unwrap_err();
    assert!(matches!(err, PublishError::TooManyColons { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("-p 8080:80:90: too many colons"),
        "message names the value and the mistake: {msg}"
    );
    assert!(
        msg.ends_with(PUBLISH_SYNTAX),
        "message shows the forms: {msg}"
    );
}

#[test]
fn a_missing_container_port_is_refused() {
    for spec in ["8080:", "/udp", "127.0.0.1:8080:", "::"] {
        assert!(
            matches!(
                parse_publish(spec),
                Err(PublishError::MissingContainerPort { .. })
            ),
            "{spec}: {:?}",
            parse_publish(spec)
        );
    }
}

#[test]
fn container_port_0_is_refused() {
    for spec in ["0", "8080:0", "0-5"] {
        assert!(
            matches!(
                parse_publish(spec),
                Err(PublishError::ZeroContainerPort { .. })
            ),
            "{spec}"
        );
    }
}

#[test]
fn ports_that_are_not_numbers_or_too_big_are_refused() {
    for (spec, role) in [
        ("http", PortRole::Container),
        ("65536", PortRole::Container),
        ("+80", PortRole::Container),
        (" 80", PortRole::Container),
        ("1-2-3", PortRole::Container),
        ("80-", PortRole::Container),
        ("x:80", PortRole::Host),
        ("99999:80", PortRole::Host),
    ] {
        match parse_publish(spec) {
            Err(PublishError::InvalidPort { role: r, .. }) => assert_eq!(r, role, "{spec}"),
            other => panic!("{spec}: {other:?}"),
        }
    }
}

#[test]
fn a_protocol_on_the_host_port_gets_a_hint() {
    match parse_publish("8080/udp:80") {
        Err(PublishError::InvalidPort { role, hint, .. }) => {
            assert_eq!(role, PortRole::Host);
            assert!(hint.contains("after the container port"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_address_without_a_host_port_gets_a_hint() {
    for spec in ["127.0.0.1:80", "[::1]:80"] {
        match parse_publish(spec) {
            Err(PublishError::InvalidPort { role, hint, .. }) => {
                assert_eq!(role, PortRole::Host, "{spec}");
                assert!(hint.contains("IP::CONTAINERPORT"), "{spec}: {hint}");
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
}

#[test]
fn backward_ranges_are_refused() {
    assert!(matches!(
        parse_publish("81-80"),
        Err(PublishError::BackwardRange {
            role: PortRole::Container,
            ..
        })
    ));
    assert!(matches!(
        parse_publish("9-8:80"),
        Err(PublishError::BackwardRange {
            role: PortRole::Host,
            ..
        })
    ));
}

#[test]
fn ranges_of_different_lengths_are_refused() {
    for spec in ["8080-8082:80-81", "8080:80-81", "8080-8081:80-82"] {
        assert!(
            matches!(
                parse_publish(spec),
                Err(PublishError::RangeLengthMismatch { .. })
            ),
            "{spec}: {:?}",
            parse_publish(spec)
        );
    }
}

#[test]
fn a_host_range_from_0_is_refused() {
    assert!(matches!(
        parse_publish("0-10:80"),
        Err(PublishError::HostRangeFromZero { .. })
    ));
}

#[test]
fn bad_host_addresses_are_refused_with_a_hint_for_ipv6() {
    match parse_publish("localhost:8080:80") {
        Err(PublishError::InvalidHostIp { ip, hint, .. }) => {
            assert_eq!(ip, "localhost");
            assert_eq!(hint, "");
        }
        other => panic!("{other:?}"),
    }
    // Docker splits `::1:80` into IP ":" and host port 1.
    match parse_publish("::1:80") {
        Err(PublishError::InvalidHostIp { hint, .. }) => assert!(hint.contains("brackets")),
        other => panic!("{other:?}"),
    }
    match parse_publish("[::1:8080:80") {
        Err(PublishError::InvalidHostIp { hint, .. }) => assert!(hint.contains("']'")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_publish("[fe80::1%eth0]:8080:80"),
        Err(PublishError::InvalidHostIp { .. })
    ));
}

#[test]
fn protocols_other_than_tcp_and_udp_are_refused() {
    for spec in ["80/sctp", "80/icmp", "80/tcp/udp"] {
        assert!(
            matches!(
                parse_publish(spec),
                Err(PublishError::UnsupportedProtocol { .. })
            ),
            "{spec}"
        );
    }
}

#[test]
fn long_form_mistakes_are_refused() {
    assert!(matches!(
        parse_publish("published=8080,80"),
        Err(PublishError::LongFormField { .. })
    ));
    assert!(matches!(
        parse_publish("=8080"),
        Err(PublishError::LongFormField { .. })
    ));
    assert!(matches!(
        parse_publish("published=8080,targte=80"),
        Err(PublishError::LongFormKey { .. })
    ));
    assert!(matches!(
        parse_publish("published=8080"),
        Err(PublishError::MissingContainerPort { .. })
    ));
}

#[test]
fn errors_echo_odd_values_quoted_and_long_ones_cut() {
    let msg = parse_publish("80 ").unwrap_err().to_string();
    assert!(msg.starts_with("-p \"80 \": "), "{msg}");
    let long = "9".repeat(10_000);
    let msg = parse_publish(&long).unwrap_err().to_string();
    assert!(msg.len() < 600, "{} bytes", msg.len());
}

#[test]
fn port_lines_print_both_families_for_every_address() {
    let m = tcp(None, 8080, 80);
    assert_eq!(
        docker_port_lines(&m),
        vec!["80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"]
    );
    assert_eq!(m.to_string(), "80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080");
    assert_eq!(host_endpoints(&m), vec!["0.0.0.0:8080", "[::]:8080"]);
}

#[test]
fn port_lines_print_one_address_and_ipv6_in_brackets() {
    let v4 = PortMapping {
        protocol: Protocol::Udp,
        ..tcp(ip("127.0.0.1"), 5353, 53)
    };
    assert_eq!(docker_port_lines(&v4), vec!["53/udp -> 127.0.0.1:5353"]);
    assert_eq!(
        docker_port_lines(&tcp(ip("::1"), 8080, 80)),
        vec!["80/tcp -> [::1]:8080"]
    );
}

#[test]
fn a_range_still_to_pick_from_prints_as_a_range() {
    let m = one("8000-8010:80");
    assert_eq!(
        host_endpoints(&m),
        vec!["0.0.0.0:8000-8010", "[::]:8000-8010"]
    );
    assert_eq!(m.publish_spec(), "8000-8010:80/tcp");
}

#[test]
fn publish_spec_writes_docker_syntax() {
    assert_eq!(tcp(None, 0, 80).publish_spec(), "80/tcp");
    assert_eq!(tcp(None, 8080, 80).publish_spec(), "8080:80/tcp");
    assert_eq!(
        tcp(ip("127.0.0.1"), 0, 80).publish_spec(),
        "127.0.0.1::80/tcp"
    );
    assert_eq!(tcp(ip("::1"), 8080, 80).publish_spec(), "[::1]:8080:80/tcp");
}

#[test]
fn host_addrs_are_both_unspecified_addresses_or_the_one_given() {
    let all: Vec<_> = tcp(None, 1, 1).host_addrs().collect();
    assert_eq!(all, vec![ip("0.0.0.0").unwrap(), ip("::").unwrap()]);
    let one: Vec<_> = tcp(ip("10.0.0.1"), 1, 1).host_addrs().collect();
    assert_eq!(one, vec![ip("10.0.0.1").unwrap()]);
}

#[test]
fn mappings_serialise_with_lowercase_protocols_and_no_range_field_when_unset() {
    let json = serde_json::to_value(tcp(ip("127.0.0.1"), 8080, 80)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"protocol": "tcp", "host_ip": "127.0.0.1", "host_port": 8080, "container_port": 80})
    );
    let back: PortMapping = serde_json::from_value(json).unwrap();
    assert_eq!(back, tcp(ip("127.0.0.1"), 8080, 80));
    let ranged = one("8000-8010:80/udp");
    let text = serde_json::to_string(&ranged).unwrap();
    assert!(text.contains("\"host_port_end\":8010"), "{text}");
    assert_eq!(serde_json::from_str::<PortMapping>(&text).unwrap(), ranged);
}

#[test]
fn protocol_names() {
    assert_eq!(Protocol::Tcp.to_string(), "tcp");
    assert_eq!(Protocol::Udp.to_string(), "udp");
    assert_eq!(Protocol::from_name("UDP"), Some(Protocol::Udp));
    assert_eq!(Protocol::from_name("sctp"), None);
}

// --add-host

fn host(name: &str, target: ExtraHostTarget) -> ExtraHost {
    ExtraHost {
        name: name.into(),
        target,
    }
}

#[test]
fn add_host_takes_colon_equals_and_host_gateway() {
    let db = ExtraHostTarget::Ip("10.0.0.5".parse().unwrap());
    assert_eq!(parse_add_host("db:10.0.0.5").unwrap(), host("db", db));
    assert_eq!(parse_add_host("db=10.0.0.5").unwrap(), host("db", db));
    assert_eq!(
        parse_add_host("host.docker.internal:host-gateway").unwrap(),
        host("host.docker.internal", ExtraHostTarget::HostGateway)
    );
    assert_eq!(
        parse_add_host("gw=host-gateway").unwrap(),
        host("gw", ExtraHostTarget::HostGateway)
    );
}

#[test]
fn add_host_takes_ipv6_bracketed_or_not() {
    let lo = host("lo6", ExtraHostTarget::Ip("::1".parse().unwrap()));
    for spec in ["lo6:[::1]", "lo6:::1", "lo6=::1", "lo6=[::1]"] {
        assert_eq!(parse_add_host(spec).unwrap(), lo, "{spec}");
    }
    assert_eq!(
        parse_add_host("db:[10.0.0.5]").unwrap().target,
        ExtraHostTarget::Ip("10.0.0.5".parse().unwrap())
    );
}

#[test]
fn add_host_without_a_separator_is_refused() {
    assert!(matches!(
        parse_add_host("db"),
        Err(PublishError::AddHostFormat { .. })
    ));
}

#[test]
fn add_host_names_must_be_hostnames() {
    for spec in [
        ":1.2.3.4",
        "a b:1.2.3.4",
        "-db:1.2.3.4",
        "db-:1.2.3.4",
        "a..b:1.2.3.4",
        "db.:1.2.3.4",
        "a:b=1.2.3.4",
        "é:1.2.3.4",
    ] {
        assert!(
            matches!(parse_add_host(spec), Err(PublishError::AddHostName { .. })),
            "{spec}: {:?}",
            parse_add_host(spec)
        );
    }
    let long_label = format!("{}:1.2.3.4", "a".repeat(64));
    assert!(matches!(
        parse_add_host(&long_label),
        Err(PublishError::AddHostName { .. })
    ));
    assert!(parse_add_host("my_host-1.example:1.2.3.4").is_ok());
}

#[test]
fn add_host_addresses_must_be_ips_or_host_gateway() {
    for (spec, hint) in [
        ("db:", "nothing follows"),
        ("db:Host-Gateway", "lower case"),
        ("db:example.com", ""),
        ("db:1.2.3.4.5", ""),
    ] {
        match parse_add_host(spec) {
            Err(PublishError::AddHostIp { hint: h, .. }) => {
                assert!(h.contains(hint), "{spec}: {h}")
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
    let msg = parse_add_host("db:nope").unwrap_err().to_string();
    assert!(msg.ends_with(ADD_HOST_SYNTAX), "{msg}");
}

#[test]
fn extra_hosts_print_in_dockers_stored_form() {
    assert_eq!(
        parse_add_host("db=[fd00::5]").unwrap().to_string(),
        "db:fd00::5"
    );
    assert_eq!(
        host("gw", ExtraHostTarget::HostGateway).to_string(),
        "gw:host-gateway"
    );
}

// Properties

fn arb_host_ip() -> impl Strategy<Value = Option<IpAddr>> {
    prop_oneof![
        Just(None),
        any::<Ipv4Addr>().prop_map(|a| Some(IpAddr::V4(a))),
        any::<Ipv6Addr>().prop_map(|a| Some(IpAddr::V6(a))),
    ]
}

fn arb_mapping() -> impl Strategy<Value = PortMapping> {
    let host_ports = prop_oneof![
        any::<u16>().prop_map(|p| (p, None)),
        (1u16..65535).prop_flat_map(|start| (Just(start), (start + 1..=65535).prop_map(Some))),
    ];
    (
        prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
        arb_host_ip(),
        host_ports,
        1u16..=65535,
    )
        .prop_map(
            |(protocol, host_ip, (host_port, host_port_end), container_port)| PortMapping {
                protocol,
                host_ip,
                host_port,
                host_port_end,
                container_port,
            },
        )
}

/// Characters the parsers treat specially, to reach more branches than
/// arbitrary text does.
fn spec_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("0"),
            Just("1"),
            Just("80"),
            Just("65535"),
            Just("65536"),
            Just(":"),
            Just("::"),
            Just("["),
            Just("]"),
            Just("/"),
            Just("-"),
            Just("."),
            Just("="),
            Just(","),
            Just("tcp"),
            Just("udp"),
            Just("published"),
            Just("target"),
            Just("host-gateway"),
            Just("ffff"),
            Just("a"),
            Just(" "),
            Just("\n"),
        ],
        0..14,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_mapping_printed_in_docker_syntax_parses_back_to_itself(m in arb_mapping()) {
        prop_assert_eq!(parse_publish(&m.publish_spec()), Ok(vec![m]));
    }

    #[test]
    fn an_unbracketed_ipv6_address_before_a_host_port_parses_as_docker_splits_it(
        a in any::<Ipv6Addr>(), host in 1u16..=65535, container in 1u16..=65535,
    ) {
        let m = parse_publish(&format!("{a}:{host}:{container}"));
        prop_assert_eq!(m, Ok(vec![tcp(Some(IpAddr::V6(a)), host, container)]));
    }

    #[test]
    fn equal_ranges_map_every_port_pairwise(
        container in 1u16..=65000, host in 1u16..=65000, len in 0u16..=500,
    ) {
        let spec = format!("{host}-{}:{container}-{}/udp", host + len, container + len);
        let got = parse_publish(&spec).unwrap();
        prop_assert_eq!(got.len(), usize::from(len) + 1);
        for (i, m) in got.iter().enumerate() {
            let i = u16::try_from(i).unwrap();
            prop_assert_eq!(m.host_port, host + i);
            prop_assert_eq!(m.container_port, container + i);
            prop_assert_eq!(m.protocol, Protocol::Udp);
            prop_assert_eq!(m.host_port_end, None);
        }
    }

    #[test]
    fn the_parsers_never_panic_on_arbitrary_text(s in "\\PC{0,40}") {
        check_any(&s)?;
    }

    #[test]
    fn the_parsers_never_panic_on_text_made_of_their_own_symbols(s in spec_like()) {
        check_any(&s)?;
    }

    #[test]
    fn an_extra_host_printed_parses_back_to_itself(
        name in "[a-z0-9]([a-z0-9_-]{0,10}[a-z0-9])?(\\.[a-z0-9_]{1,8}){0,3}",
        target in prop_oneof![
            Just(ExtraHostTarget::HostGateway),
            any::<IpAddr>().prop_map(ExtraHostTarget::Ip),
        ],
    ) {
        let h = ExtraHost { name, target };
        prop_assert_eq!(parse_add_host(&h.to_string()), Ok(h));
    }
}

/// What holds for any input: no panic, and whatever parses is valid and
/// prints back to itself.
fn check_any(s: &str) -> Result<(), TestCaseError> {
    match parse_publish(s) {
        Ok(mappings) => {
            prop_assert!(!mappings.is_empty());
            for m in &mappings {
                prop_assert!(m.container_port >= 1);
                if let Some(end) = m.host_port_end {
                    prop_assert!(m.host_port >= 1 && end > m.host_port);
                }
                prop_assert_eq!(parse_publish(&m.publish_spec()), Ok(vec![*m]));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n'), "one-line message: {}", msg);
        }
    }
    match parse_add_host(s) {
        Ok(h) => prop_assert_eq!(parse_add_host(&h.to_string()), Ok(h)),
        Err(e) => prop_assert!(!e.to_string().contains('\n')),
    }
    Ok(())
}
