//! The TAP backend: one descriptor of a TAP device (or anything that
//! reads and writes one Ethernet frame per call, such as a datagram socket
//! pair in tests).
//!
//! With virtio-net headers (`IFF_VNET_HDR` + `TUNSETOFFLOAD`) each read
//! starts with the 10-byte header: it is parsed into the frame's
//! [`Offload`] and dropped, and re-made for each write, so a TCP sender's
//! 64 KiB GSO frames and partial checksums cross the switch untouched
//! (the receiving kernel segments or checksums only if it must). Writes are
//! a `writev` of the header and the frame, so nothing is copied. A TAP
//! without the header takes only plain frames: a partial checksum is
//! completed in software; a GSO frame would need segmentation and is
//! refused (counted). There is no batched read or write for TAPs in the
//! kernel: reads are a loop of `read`s up to the batch's bound.

use super::{complete_checksum, IoCounters, Offload, PortBackend, RxBatch, RxError, TxError};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use switchyard_switch::wire::vnet_hdr::{self, GsoType, Header, HEADER_LEN as VNET_HDR_LEN};

/// How frames are framed on a TAP descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapFraming {
    /// Each read and write carries a virtio-net header before the frame.
    pub vnet_hdr: bool,
}

/// A TAP descriptor as a switch port.
#[derive(Debug)]
pub struct TapPort {
    fd: OwnedFd,
    framing: TapFraming,
    /// For frames whose checksum is completed in software.
    scratch: Box<[u8]>,
}

impl TapPort {
    /// Wraps a non-blocking descriptor opened with `framing`.
    pub fn new(fd: OwnedFd, framing: TapFraming) -> TapPort {
        TapPort {
            fd,
            framing,
            scratch: Vec::new().into_boxed_slice(),
        }
    }

    fn headroom(&self) -> usize {
        if self.framing.vnet_hdr {
            VNET_HDR_LEN
        } else {
            0
        }
    }
}

impl PortBackend for TapPort {
    fn kind(&self) -> &'static str {
        "tap"
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn recv_batch(
        &mut self,
        batch: &mut RxBatch,
        counters: &mut IoCounters,
    ) -> Result<(), RxError> {
        let headroom = self.headroom();
        while let Some(space) = batch.space(headroom) {
            // SAFETY: space is a live, writable buffer of its length.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), space.as_mut_ptr().cast(), space.len()) };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                    _ => Err(RxError::Io(err)),
                };
            }
            let n = n as usize;
            if n == 0 {
                return Ok(());
            }
            if headroom == 0 {
                batch.push(0, n, Offload::NONE);
                continue;
            }
            let parsed = Header::new_checked(&space[..n])
                .and_then(|h| vnet_hdr::Repr::parse(&h))
                .and_then(|r| r.check_frame_len(n - VNET_HDR_LEN).map(|()| r));
            match parsed {
                Ok(offload) => batch.push(VNET_HDR_LEN, n - VNET_HDR_LEN, offload),
                Err(_) => counters.rx_errors += 1,
            }
        }
        Ok(())
    }

    fn send(
        &mut self,
        frame: &[u8],
        offload: &Offload,
        counters: &mut IoCounters,
    ) -> Result<(), TxError> {
        if self.framing.vnet_hdr {
            let mut hdr = [0u8; VNET_HDR_LEN];
            offload.emit(&mut Header::new_unchecked(&mut hdr[..]));
            return writev(self.fd.as_raw_fd(), &hdr, frame);
        }
        if offload.gso != GsoType::None {
            return Err(TxError::NeedsSegmentation);
        }
        if !offload.needs_csum {
            return write(self.fd.as_raw_fd(), frame);
        }
        offload
            .check_frame_len(frame.len())
            .map_err(|_| TxError::BadOffload)?;
        if self.scratch.len() < frame.len() {
            // Once per port, on the first partial checksum it gets.
            self.scratch = vec![0u8; super::MAX_FRAME].into_boxed_slice();
        }
        let copy = &mut self.scratch[..frame.len()];
        copy.copy_from_slice(frame);
        complete_checksum(
            copy,
            usize::from(offload.csum_start),
            usize::from(offload.csum_offset),
        );
        counters.converted += 1;
        write(self.fd.as_raw_fd(), copy)
    }
}

fn write(fd: RawFd, bytes: &[u8]) -> Result<(), TxError> {
    // SAFETY: bytes is a live slice.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        return Err(TxError::Io(io::Error::last_os_error()));
    }
    if n as usize != bytes.len() {
        return Err(TxError::Io(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write",
        )));
    }
    Ok(())
}

fn writev(fd: RawFd, head: &[u8], body: &[u8]) -> Result<(), TxError> {
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both iovecs point at live slices of their lengths; the
    // kernel only reads them.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if n < 0 {
        return Err(TxError::Io(io::Error::last_os_error()));
    }
    if n as usize != head.len() + body.len() {
        return Err(TxError::Io(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write",
        )));
    }
    Ok(())
}
