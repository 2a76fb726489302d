//! pcap capture in memory, with nanosecond timestamps taken from virtual
//! time, so a run's captures open in Wireshark/tshark exactly as the
//! simulator saw them, identical on every replay.

use switchyard_switch::Instant;

/// The nanosecond-resolution pcap magic (written little-endian).
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame recorded whole; longer ones are cut (and say so in the
/// record's original length).
pub const SNAPLEN: u32 = 262_144;

/// A pcap file being written to memory.
#[derive(Clone, Debug)]
pub struct PcapWriter {
    buf: Vec<u8>,
    frames: u64,
}

impl Default for PcapWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PcapWriter {
    /// A file with just the global header.
    pub fn new() -> PcapWriter {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(&MAGIC_NANOS.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        buf.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        buf.extend_from_slice(&SNAPLEN.to_le_bytes());
        buf.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        PcapWriter { buf, frames: 0 }
    }

    /// Appends one frame seen at `time`.
    pub fn record(&mut self, time: Instant, frame: &[u8]) {
        let nanos = time.as_nanos();
        let secs = (nanos / 1_000_000_000) as u32;
        let frac = (nanos % 1_000_000_000) as u32;
        let orig = frame.len() as u32;
        let incl = orig.min(SNAPLEN);
        self.buf.extend_from_slice(&secs.to_le_bytes());
        self.buf.extend_from_slice(&frac.to_le_bytes());
        self.buf.extend_from_slice(&incl.to_le_bytes());
        self.buf.extend_from_slice(&orig.to_le_bytes());
        self.buf.extend_from_slice(&frame[..incl as usize]);
        self.frames += 1;
    }

    /// The file's bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Frames recorded.
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new();
        assert_eq!(w.bytes().len(), 24);
        assert_eq!(&w.bytes()[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        w.record(Instant::from_nanos(1_500_000_001), &[1, 2, 3]);
        let r = &w.bytes()[24..];
        assert_eq!(&r[0..4], &1u32.to_le_bytes());
        assert_eq!(&r[4..8], &500_000_001u32.to_le_bytes());
        assert_eq!(&r[8..12], &3u32.to_le_bytes());
        assert_eq!(&r[16..], &[1, 2, 3]);
        assert_eq!(w.frames(), 1);
    }
}
