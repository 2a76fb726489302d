//! Frames the unit tests of this crate build (test-only).

/// A TCP/IPv4 frame of `payload` bytes (ACK, PSH) from 10.9.0.1 to
/// 10.9.0.2 between `src` and `dst`, headers once and the checksum field
/// zero: what a TAP with TSO hands over as a GSO super-frame (behind its
/// virtio-net header) when `payload` exceeds the MSS. Payload byte `i` is
/// `fill(i)`.
pub(crate) fn tcp4_superframe(
    dst: [u8; 6],
    src: [u8; 6],
    payload: usize,
    fill: impl Fn(usize) -> u8,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 9, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 9, 0, 2]);
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[12] = 0x50;
    tcp[13] = 0x18;
    f.extend_from_slice(&tcp);
    f.extend((0..payload).map(fill));
    f
}
