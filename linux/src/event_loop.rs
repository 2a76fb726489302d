//! One readiness loop for every real-mode thread that multiplexes
//! descriptors: the data plane and the embedded DNS server both run on an
//! [`EventLoop`] (level-triggered epoll) and are woken by a [`Waker`] (an
//! eventfd) when their control channel has work.
//!
//! The loop only reports readiness; the thread that owns it decides what a
//! token means and reads or writes its descriptors itself, so there is no
//! callback, no allocation and no lock per event. Timeouts are deadlines
//! the caller computes (the earliest one its ports or timers need), never a
//! fixed tick.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// What a registered descriptor is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Readable (or hung up).
    Readable,
    /// Writable (or hung up): a socket waiting to flush its output.
    Writable,
    /// Both.
    Both,
}

impl Interest {
    fn bits(self) -> u32 {
        match self {
            Interest::Readable => libc::EPOLLIN as u32,
            Interest::Writable => libc::EPOLLOUT as u32,
            Interest::Both => (libc::EPOLLIN | libc::EPOLLOUT) as u32,
        }
    }

    /// Readable, writable, both or — when neither — `None` (the caller
    /// should then remove the descriptor, or keep it for its hang-up only
    /// with [`EventLoop::modify_hangup_only`], rather than watch nothing).
    pub fn from_flags(readable: bool, writable: bool) -> Option<Interest> {
        match (readable, writable) {
            (true, true) => Some(Interest::Both),
            (true, false) => Some(Interest::Readable),
            (false, true) => Some(Interest::Writable),
            (false, false) => None,
        }
    }
}

/// One readiness report from [`EventLoop::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The token the descriptor was registered with.
    pub token: u64,
    flags: u32,
}

impl Event {
    /// Data (or a connection) can be read without blocking.
    pub fn is_readable(&self) -> bool {
        self.flags & libc::EPOLLIN as u32 != 0
    }

    /// Output can be written without blocking.
    pub fn is_writable(&self) -> bool {
        self.flags & libc::EPOLLOUT as u32 != 0
    }

    /// The peer hung up or the descriptor is in error: the owner should
    /// read what is left (to learn the error) and close it.
    pub fn is_error_or_hangup(&self) -> bool {
        self.flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
    }

    /// The descriptor is in error (a refused connect, a reset).
    pub fn is_error(&self) -> bool {
        self.flags & libc::EPOLLERR as u32 != 0
    }

    /// The peer closed its side (or both): what is left can still be read.
    pub fn is_peer_closed(&self) -> bool {
        self.flags & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0
    }
}

/// A level-triggered epoll instance with a fixed-size event buffer.
#[derive(Debug)]
pub struct EventLoop {
    epoll: OwnedFd,
    events: Box<[libc::epoll_event]>,
}

impl EventLoop {
    /// A loop that reports up to `batch` ready descriptors per wait.
    pub fn new(batch: usize) -> io::Result<EventLoop> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EventLoop {
            // SAFETY: fd is a fresh descriptor we own.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(1)].into_boxed_slice(),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: ev is a valid epoll_event; fd is the caller's descriptor.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Starts watching `fd`; its events carry `token`.
    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest.bits())
    }

    /// Starts watching `fd` edge-triggered for reading and writing (and
    /// the peer's half-close): an event comes once per change, so the
    /// owner must read or write until the call would block before it
    /// waits again. For many sockets owned by one state machine (the
    /// gateway's host sockets) that tracks what each can do itself, and
    /// never needs its interest changed.
    pub fn add_edge(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let bits = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, bits)
    }

    /// Changes what a watched `fd` is watched for (and its token).
    pub fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest.bits())
    }

    /// Keeps a watched `fd` registered but for neither reading nor writing:
    /// only an error or a hang-up is still reported (epoll reports those
    /// whatever is asked). For a connection that has nothing to read or
    /// write for now — its peer finished sending and its reply is still
    /// being fetched — but must be closed at once if the peer resets it;
    /// watching it for reading would spin on its end of file.
    pub fn modify_hangup_only(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, 0)
    }

    /// Stops watching `fd`. Closing a descriptor also removes it (when no
    /// duplicate of it stays open), so this is only needed for descriptors
    /// that live on. Removing one that is not watched is harmless.
    pub fn remove(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    /// Waits until a descriptor is ready or `timeout` passes (`None`: no
    /// limit; zero: just poll). A signal interrupting the wait is reported
    /// as no events. Millisecond resolution, rounded up, so a deadline is
    /// never woken for early.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
    ) -> io::Result<impl Iterator<Item = Event> + '_> {
        let ms = match timeout {
            None => -1,
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        };
        // SAFETY: events is a valid, writable array of the given length.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                i32::try_from(self.events.len()).unwrap_or(i32::MAX),
                ms,
            )
        };
        let n = if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
            0
        } else {
            n as usize
        };
        Ok(self.events[..n].iter().map(|e| Event {
            token: e.u64,
            flags: e.events,
        }))
    }
}

impl AsRawFd for EventLoop {
    /// The epoll descriptor itself: readable while any watched descriptor
    /// has an event, so one loop can be nested in another.
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

/// Wakes an [`EventLoop`] from another thread: an eventfd the loop
/// watches. Cheap to clone (`try_clone`), so the control plane keeps one
/// end and the loop's thread the other.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A fresh, non-blocking eventfd.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Waker {
            // SAFETY: fd is a fresh descriptor we own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// A second handle on the same eventfd.
    pub fn try_clone(&self) -> io::Result<Waker> {
        Ok(Waker {
            fd: self.fd.try_clone()?,
        })
    }

    /// Makes the loop's next (or current) wait return.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to our eventfd. It can
        // only fail when the counter is saturated, i.e. already pending.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wake-ups (call when the loop reports the waker).
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes into a live u64 from our eventfd.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_wake_from_another_thread_ends_the_wait_and_drain_clears_it() {
        let mut ev = EventLoop::new(8).unwrap();
        let waker = Waker::new().unwrap();
        ev.add(waker.as_raw_fd(), 7, Interest::Readable).unwrap();
        let remote = waker.try_clone().unwrap();
        let t = std::thread::spawn(move || remote.wake());
        let got: Vec<Event> = ev.wait(Some(Duration::from_secs(5))).unwrap().collect();
        t.join().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].token, 7);
        assert!(got[0].is_readable());
        waker.drain();
        assert_eq!(ev.wait(Some(Duration::ZERO)).unwrap().count(), 0);
    }

    #[test]
    fn interest_can_change_from_readable_to_writable_and_back() {
        let mut ev = EventLoop::new(8).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        ev.add(a.as_raw_fd(), 1, Interest::Readable).unwrap();
        assert_eq!(
            ev.wait(Some(Duration::ZERO)).unwrap().count(),
            0,
            "nothing to read"
        );
        ev.modify(a.as_raw_fd(), 2, Interest::Writable).unwrap();
        let got: Vec<Event> = ev.wait(Some(Duration::ZERO)).unwrap().collect();
        assert_eq!((got[0].token, got[0].is_writable()), (2, true));
        ev.modify(a.as_raw_fd(), 3, Interest::Readable).unwrap();
        b.write_all(b"x").unwrap();
        let got: Vec<Event> = ev.wait(Some(Duration::ZERO)).unwrap().collect();
        assert_eq!((got[0].token, got[0].is_readable()), (3, true));
        ev.remove(a.as_raw_fd());
        assert_eq!(ev.wait(Some(Duration::ZERO)).unwrap().count(), 0, "removed");
    }

    #[test]
    fn a_timeout_is_never_shorter_than_asked() {
        let mut ev = EventLoop::new(1).unwrap();
        #[allow(clippy::disallowed_methods)] // the test measures a real wait
        let start = std::time::Instant::now();
        assert_eq!(
            ev.wait(Some(Duration::from_micros(1500))).unwrap().count(),
            0
        );
        assert!(start.elapsed() >= Duration::from_micros(1500));
    }

    #[test]
    fn a_descriptor_watched_for_hangup_only_reports_its_hangup_but_not_its_data() {
        let mut ev = EventLoop::new(8).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        ev.add(a.as_raw_fd(), 1, Interest::Readable).unwrap();
        ev.modify_hangup_only(a.as_raw_fd(), 4).unwrap();
        b.write_all(b"x").unwrap();
        assert_eq!(
            ev.wait(Some(Duration::ZERO)).unwrap().count(),
            0,
            "data waiting is not reported"
        );
        drop(b);
        let got: Vec<Event> = ev.wait(Some(Duration::ZERO)).unwrap().collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].token, 4);
        assert!(got[0].is_error_or_hangup());
    }

    #[test]
    fn interest_from_flags_is_none_when_nothing_is_wanted() {
        assert_eq!(Interest::from_flags(false, false), None);
        assert_eq!(Interest::from_flags(true, true), Some(Interest::Both));
    }
}
