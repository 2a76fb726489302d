//! Software TCP segmentation of arbitrary "super-frames" with arbitrary
//! segment sizes: planning never panics, every planned segment fits the
//! room the plan asks for, the segments' payloads add up to the frame's,
//! and none is longer than the segment size allows. Receive coalescing
//! (what arrives from the underlay: hostile bytes) never panics either, on
//! the input split in two "datagrams", and never grows a frame past the
//! buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_switch::gso::{TcpGso, TcpMerge, TcpSegments};

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b, c], frame)) = data.split_first_chunk::<3>() else {
        return;
    };
    let kind = if a & 1 == 0 { TcpGso::V4 } else { TcpGso::V6 };
    let mss = usize::from(u16::from_le_bytes([b, c]));
    let mut buf = frame.to_vec();
    let split = mss.min(buf.len());
    if let Some(mut merge) = TcpMerge::start(&buf, 0, split) {
        let rest = buf.len() - split;
        merge.append(&mut buf, split, rest);
        let (len, _) = merge.finish(&mut buf);
        assert!(len <= buf.len());
    }
    let Ok(plan) = TcpSegments::plan(frame, kind, mss) else {
        return;
    };
    let mut out = vec![0u8; plan.max_segment_len()];
    let mut payload = 0;
    for i in 0..plan.count() {
        let n = plan.write(frame, i, &mut out);
        assert_eq!(n, plan.segment_len(i));
        assert!(n <= out.len());
        assert!(n - plan.header_len() <= mss);
        payload += n - plan.header_len();
    }
    assert_eq!(payload, plan.payload_len());
});
