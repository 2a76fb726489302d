//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): every message is
//! preceded by its length as a big-endian u16. The server reads whatever the
//! stream gives it into a [`TcpDeframer`] and takes whole messages out; the
//! buffer is bounded so a client that never finishes a message cannot make
//! the daemon hoard memory.

use crate::wire::MAX_TCP_PAYLOAD;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 2;
/// Default bound on buffered bytes: two of the largest framed messages, so a
/// pipelining client can have one complete message waiting while the next
/// one arrives.
pub const DEFAULT_DEFRAMER_LIMIT: usize = 2 * (LENGTH_PREFIX + MAX_TCP_PAYLOAD);

/// Why framing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TcpFrameError {
    /// The message does not fit the 2-byte length prefix.
    #[error("a {0}-byte message cannot be framed for TCP (limit 65535): truncate it first")]
    TooLong(usize),
    /// The peer sent more than the deframer holds without completing it.
    #[error(
        "TCP peer has {buffered} bytes buffered and sent {incoming} more, over the {limit}-byte limit: close the connection"
    )]
    Overflow {
        /// Bytes already held.
        buffered: usize,
        /// Bytes offered.
        incoming: usize,
        /// The bound.
        limit: usize,
    },
}

/// Appends `message` to `out` with its length prefix, ready to write to a
/// TCP stream.
pub fn tcp_frame(message: &[u8], out: &mut Vec<u8>) -> Result<(), TcpFrameError> {
    let len = u16::try_from(message.len()).map_err(|_| TcpFrameError::TooLong(message.len()))?;
    out.reserve(LENGTH_PREFIX + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(())
}

/// Turns a TCP byte stream back into DNS messages. Feed it with
/// [`TcpDeframer::push`], then take messages with
/// [`TcpDeframer::next_message`] until it returns `None`.
#[derive(Debug, Clone)]
pub struct TcpDeframer {
    buf: Vec<u8>,
    /// Start of the bytes not yet handed out.
    start: usize,
    limit: usize,
}

impl Default for TcpDeframer {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpDeframer {
    /// A deframer bounded at [`DEFAULT_DEFRAMER_LIMIT`].
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_DEFRAMER_LIMIT)
    }

    /// A deframer holding at most `limit` bytes (at least one full framed
    /// message, so any legal message can complete).
    pub fn with_limit(limit: usize) -> Self {
        TcpDeframer {
            buf: Vec::new(),
            start: 0,
            limit: limit.max(LENGTH_PREFIX + MAX_TCP_PAYLOAD),
        }
    }

    /// Bytes held that were not yet handed out as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// How many more bytes [`TcpDeframer::push`] accepts right now: read at
    /// most this much from the socket.
    pub fn spare(&self) -> usize {
        self.limit - self.buffered()
    }

    /// Adds bytes read from the stream. Fails, keeping nothing of `bytes`,
    /// when they would exceed the bound; the connection should be closed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), TcpFrameError> {
        if bytes.len() > self.spare() {
            return Err(TcpFrameError::Overflow {
                buffered: self.buffered(),
                incoming: bytes.len(),
                limit: self.limit,
            });
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete message, if one has arrived. It borrows the
    /// deframer: handle it before pushing more.
    pub fn next_message(&mut self) -> Option<&[u8]> {
        let pending = &self.buf[self.start..];
        if pending.len() < LENGTH_PREFIX {
            return None;
        }
        let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
        if pending.len() < LENGTH_PREFIX + len {
            return None;
        }
        let begin = self.start + LENGTH_PREFIX;
        self.start = begin + len;
        Some(&self.buf[begin..begin + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            tcp_frame(m, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn frame_prefixes_the_length() {
        assert_eq!(framed(&[b"abc"]), b"\x00\x03abc");
    }

    #[test]
    fn frame_rejects_messages_over_65535_bytes() {
        let big = vec![0u8; 65536];
        assert_eq!(
            tcp_frame(&big, &mut Vec::new()),
            Err(TcpFrameError::TooLong(65536))
        );
    }

    #[test]
    fn message_split_across_pushes_is_reassembled() {
        let stream = framed(&[b"hello"]);
        let mut d = TcpDeframer::new();
        d.push(&stream[..1]).unwrap();
        assert_eq!(d.next_message(), None);
        d.push(&stream[1..4]).unwrap();
        assert_eq!(d.next_message(), None);
        d.push(&stream[4..]).unwrap();
        assert_eq!(d.next_message(), Some(&b"hello"[..]));
        assert_eq!(d.next_message(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn pipelined_messages_come_out_in_order() {
        let stream = framed(&[b"one", b"", b"three"]);
        let mut d = TcpDeframer::new();
        d.push(&stream).unwrap();
        assert_eq!(d.next_message(), Some(&b"one"[..]));
        assert_eq!(d.next_message(), Some(&b""[..]));
        assert_eq!(d.next_message(), Some(&b"three"[..]));
        assert_eq!(d.next_message(), None);
    }

    #[test]
    fn overflow_is_refused_and_keeps_the_buffer() {
        let mut d = TcpDeframer::with_limit(0);
        assert_eq!(d.spare(), LENGTH_PREFIX + MAX_TCP_PAYLOAD);
        d.push(&[0xFF, 0xFF]).unwrap();
        let rest = vec![0u8; MAX_TCP_PAYLOAD + 1];
        assert!(matches!(d.push(&rest), Err(TcpFrameError::Overflow { .. })));
        assert_eq!(d.buffered(), 2);
        d.push(&rest[..MAX_TCP_PAYLOAD]).unwrap();
        assert_eq!(d.next_message().map(<[u8]>::len), Some(MAX_TCP_PAYLOAD));
    }

    #[test]
    fn consumed_bytes_are_released_on_the_next_push() {
        let mut d = TcpDeframer::new();
        d.push(&framed(&[b"abc"])).unwrap();
        assert!(d.next_message().is_some());
        d.push(b"\x00").unwrap();
        assert_eq!(d.buffered(), 1);
        assert_eq!(d.buf.len(), 1);
    }
}
