//! Arbitrary text as a `-p/--publish` value and as an `--add-host` value:
//! nothing may panic, every error is one line, and whatever parses is
//! valid and prints back (in Docker's syntax) to exactly itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_switch::controller::publish::{parse_add_host, parse_publish};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    match parse_publish(spec) {
        Ok(mappings) => {
            assert!(!mappings.is_empty(), "{spec:?} parsed to no mapping");
            for m in &mappings {
                assert!(m.container_port >= 1, "{spec:?} gave container port 0");
                if let Some(end) = m.host_port_end {
                    assert!(m.host_port >= 1 && end > m.host_port, "{spec:?}: {m:?}");
                }
                assert_eq!(
                    parse_publish(&m.publish_spec()),
                    Ok(vec![*m]),
                    "{spec:?}: {m:?} does not print back to itself"
                );
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{spec:?}: {e}"),
    }
    match parse_add_host(spec) {
        Ok(h) => assert_eq!(parse_add_host(&h.to_string()), Ok(h.clone()), "{spec:?}"),
        Err(e) => assert!(!e.to_string().contains('\n'), "{spec:?}: {e}"),
    }
});
