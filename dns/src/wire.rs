//! DNS message layout (RFC 1035 §4.1, RFC 6891): byte offsets, flag bits and
//! the few codes this resolver speaks, kept in one place so the parser and the
//! writer cannot disagree about them.

/// Byte ranges of the fixed 12-byte header.
pub(crate) mod field {
    /// A byte range inside a message.
    pub(crate) type Field = core::ops::Range<usize>;

    pub(crate) const ID: Field = 0..2;
    pub(crate) const FLAGS: Field = 2..4;
    pub(crate) const QDCOUNT: Field = 4..6;
    pub(crate) const ANCOUNT: Field = 6..8;
    pub(crate) const NSCOUNT: Field = 8..10;
    pub(crate) const ARCOUNT: Field = 10..12;
    /// Where the question section starts.
    pub(crate) const HEADER_LEN: usize = 12;
}

/// Bits of the header's flags word.
pub(crate) mod flags {
    pub(crate) const QR: u16 = 0x8000;
    pub(crate) const OPCODE_MASK: u16 = 0x7800;
    pub(crate) const AA: u16 = 0x0400;
    pub(crate) const TC: u16 = 0x0200;
    pub(crate) const RD: u16 = 0x0100;
    pub(crate) const RA: u16 = 0x0080;
    pub(crate) const CD: u16 = 0x0010;
    pub(crate) const RCODE_MASK: u16 = 0x000F;
}

/// Record types this resolver answers or inspects.
pub(crate) mod rtype {
    pub(crate) const A: u16 = 1;
    pub(crate) const PTR: u16 = 12;
    pub(crate) const AAAA: u16 = 28;
    pub(crate) const OPT: u16 = 41;
}

/// The Internet class; the only one the embedded names live in.
pub(crate) const CLASS_IN: u16 = 1;

/// Response codes (the low four bits, plus EDNS's extended BADVERS).
pub(crate) mod rcode {
    pub(crate) const NOERROR: u16 = 0;
    pub(crate) const FORMERR: u16 = 1;
    pub(crate) const SERVFAIL: u16 = 2;
    pub(crate) const NXDOMAIN: u16 = 3;
    pub(crate) const NOTIMP: u16 = 4;
    pub(crate) const REFUSED: u16 = 5;
    /// 12-bit extended code (RFC 6891 §9): high 8 bits go in the OPT TTL.
    pub(crate) const BADVERS: u16 = 16;
}

/// Longest encoded name, root label included (RFC 1035 §3.1).
pub(crate) const MAX_NAME_LEN: usize = 255;
/// Longest label.
pub(crate) const MAX_LABEL_LEN: usize = 63;
/// Size of an OPT pseudo-record with no options.
pub(crate) const OPT_RECORD_LEN: usize = 11;
/// Smallest UDP message every client must accept (RFC 1035 §4.2.1).
pub(crate) const MIN_UDP_PAYLOAD: usize = 512;
/// Largest UDP payload we honour, and the one we advertise in our OPT record.
pub(crate) const MAX_UDP_PAYLOAD: usize = 4096;
/// Largest message TCP's 2-byte length prefix can carry.
pub(crate) const MAX_TCP_PAYLOAD: usize = 65535;

/// Reads a big-endian u16 at `at`; the caller has checked the bounds.
#[inline]
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Writes a big-endian u16 at `at`; the caller has checked the bounds.
#[inline]
pub(crate) fn set_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// The opcode field of a flags word.
#[inline]
pub(crate) fn opcode(flags_word: u16) -> u16 {
    (flags_word & flags::OPCODE_MASK) >> 11
}

/// Why a name could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadName;

/// Skips a possibly compressed name starting at `at`, returning the offset
/// just past it. Pointers must point strictly backwards and past the header,
/// so a malicious message cannot make this loop; we never follow them because
/// records we skip are not needed.
pub(crate) fn skip_name(buf: &[u8], mut at: usize) -> Result<usize, BadName> {
    let mut encoded = 0usize;
    loop {
        let len = *buf.get(at).ok_or(BadName)? as usize;
        match len & 0xC0 {
            0x00 => {
                encoded += len + 1;
                if encoded > MAX_NAME_LEN {
                    return Err(BadName);
                }
                if len == 0 {
                    return Ok(at + 1);
                }
                at += 1 + len;
                if at > buf.len() {
                    return Err(BadName);
                }
            }
            0xC0 => {
                let low = *buf.get(at + 1).ok_or(BadName)? as usize;
                let target = ((len & 0x3F) << 8) | low;
                if target < field::HEADER_LEN || target >= at {
                    return Err(BadName);
                }
                return Ok(at + 2);
            }
            // 0x40 and 0x80 are extended/obsolete label types (RFC 6891 §5).
            _ => return Err(BadName),
        }
    }
}

/// Encodes a dotted name as wire labels without the root byte (the form the
/// record index and PTR targets use). A trailing dot is accepted. Returns
/// `None` for names DNS cannot carry: empty labels, labels over 63 bytes, or
/// more than 254 bytes encoded.
pub(crate) fn encode_labels(name: &str) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.split('.') {
        let bytes = label.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_LABEL_LEN {
            return None;
        }
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    // +1 for the root label the name will be terminated with on the wire.
    if out.len() + 1 > MAX_NAME_LEN {
        return None;
    }
    Some(out)
}

/// Lowercases the ASCII letters of wire labels in place (length bytes are
/// all below 64, so they are never touched).
pub(crate) fn lowercase_in_place(labels: &mut [u8]) {
    labels.make_ascii_lowercase();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_labels_adds_length_bytes_and_drops_trailing_dot() {
        assert_eq!(encode_labels("web.net."), Some(b"\x03web\x03net".to_vec()));
    }

    #[test]
    fn encode_labels_rejects_empty_labels() {
        assert_eq!(encode_labels("a..b"), None);
        assert_eq!(encode_labels(""), None);
        assert_eq!(encode_labels("."), None);
    }

    #[test]
    fn encode_labels_rejects_long_labels() {
        assert_eq!(encode_labels(&"x".repeat(64)), None);
        assert!(encode_labels(&"x".repeat(63)).is_some());
    }

    #[test]
    fn skip_name_rejects_forward_pointers() {
        let mut buf = vec![0u8; 12];
        buf.extend_from_slice(&[0xC0, 20]);
        assert_eq!(skip_name(&buf, 12), Err(BadName));
    }

    #[test]
    fn skip_name_accepts_backward_pointers() {
        let mut buf = vec![0u8; 12];
        buf.extend_from_slice(b"\x01a\x00\xC0\x0C");
        assert_eq!(skip_name(&buf, 15), Ok(17));
    }
}
