//! `epoll`: sets of descriptors watched for readiness, with Linux's semantics.
//!
//! An epoll set is an open file ([`Vfs::epoll_create1`]) holding registrations made with
//! [`Vfs::epoll_ctl`]: a descriptor number, the open file description it named, the events
//! asked for (`EPOLLERR` and `EPOLLHUP` always added, as Linux does) and the caller's
//! 64-bit `data`. As on Linux a registration belongs to the open file description, not to
//! the number: it holds the description weakly, so closing the last descriptor of a file
//! (every `dup` of it) removes it from every set (the entry is dropped the next time the
//! set is looked at, and a new file at the same number is a new key); while a `dup` keeps
//! the description open it is still reported, under the number it was added with.
//!
//! **Readiness is computed, not queued.** Linux keeps a ready list filled by wake-up
//! callbacks; here there are no callbacks into a set, so [`EpollInstance::collect`] asks
//! each registered file for its events now (the same answer `poll` gets) and reports those
//! asked for. Waiting is the caller's (uk-posix-process's `epoll_wait`): it reads the
//! [`readiness_epoch`] before collecting and sleeps until it moves,
//! as `poll` does. Sets are scanned from where the last report stopped, so a set with more
//! ready files than `maxevents` reports them all in turn, as Linux's ready-list rotation
//! does.
//!
//! **Edge-triggered (`EPOLLET`).** Every pollable object has a generation that each change
//! to it moves (see [`crate::poll`]). A level-triggered registration is reported whenever
//! its file is ready; an edge-triggered one only when its file is ready *and* its
//! generation differs from the one recorded at its last report: once per change, however
//! often the caller asks. The generation is read before the events, so a change racing
//! with a report is reported again rather than lost. `EPOLL_CTL_MOD` forgets the recorded
//! generation (Linux reports a ready file once after `MOD`). Files that never change
//! (terminals) are reported once after `ADD`; a nested epoll set's generation is the global
//! epoch, so it may be reported again after unrelated changes (spurious, never missed).
//!
//! **`EPOLLONESHOT`**: after one report the registration keeps only its private bits (as
//! Linux) and reports nothing until `EPOLL_CTL_MOD` re-arms it. **`EPOLLEXCLUSIVE`** is
//! accepted on `ADD` (with Linux's checks) and changes nothing else: waiters here are woken
//! all at once anyway.
//!
//! What Linux refuses, refused the same way: `EPERM` for files without readiness
//! (regular files, directories, devices other than the console, which is a terminal),
//! `EINVAL` for a set added to itself or an `epfd` that is no set, `ELOOP` for a set that
//! would contain itself through others or sets nested more than [`EP_MAX_NESTS`] deep
//! below the one added to (Linux also counts the sets above; those are not tracked here).
//! An epoll set is itself pollable: `POLLIN` while it has something to report.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use spin::Mutex;

use crate::Errno;
use crate::file::{Fd, Object, OpenFile};
use crate::poll::{ALWAYS_READY, POLLIN, POLLRDNORM, readiness_changed, readiness_epoch};
use crate::types::{FileType, O_CLOEXEC};
use crate::vfs::Vfs;

/// Readable.
pub const EPOLLIN: u32 = 0x001;
/// Urgent data (never reported here).
pub const EPOLLPRI: u32 = 0x002;
/// Writable.
pub const EPOLLOUT: u32 = 0x004;
/// Error (always watched).
pub const EPOLLERR: u32 = 0x008;
/// Hang-up (always watched).
pub const EPOLLHUP: u32 = 0x010;
/// Normal data readable.
pub const EPOLLRDNORM: u32 = 0x040;
/// Priority band readable (never reported here).
pub const EPOLLRDBAND: u32 = 0x080;
/// Normal data writable.
pub const EPOLLWRNORM: u32 = 0x100;
/// Priority band writable (never reported here).
pub const EPOLLWRBAND: u32 = 0x200;
/// Unused by Linux; accepted.
pub const EPOLLMSG: u32 = 0x400;
/// The peer shut its writing half (sockets; never reported here).
pub const EPOLLRDHUP: u32 = 0x2000;
/// Wake one of several sets waiting on the file (accepted with `EPOLL_CTL_ADD` only).
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
/// Keep the system awake while the event is pending (accepted, no effect).
pub const EPOLLWAKEUP: u32 = 1 << 29;
/// Report once, then disable until `EPOLL_CTL_MOD`.
pub const EPOLLONESHOT: u32 = 1 << 30;
/// Edge-triggered: report once per change.
pub const EPOLLET: u32 = 1 << 31;

/// The bits that say how to report, not what (Linux's `EP_PRIVATE_BITS`).
const PRIVATE_BITS: u32 = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
/// What may come with `EPOLLEXCLUSIVE` (Linux's `EPOLLEXCLUSIVE_OK_BITS`).
const EXCLUSIVE_OK_BITS: u32 = EPOLLIN
    | EPOLLOUT
    | EPOLLRDNORM
    | EPOLLRDBAND
    | EPOLLWRNORM
    | EPOLLWRBAND
    | EPOLLERR
    | EPOLLHUP
    | EPOLLWAKEUP
    | EPOLLET
    | EPOLLEXCLUSIVE;

/// `epoll_ctl`: register a descriptor.
pub const EPOLL_CTL_ADD: i32 = 1;
/// `epoll_ctl`: remove a registration.
pub const EPOLL_CTL_DEL: i32 = 2;
/// `epoll_ctl`: change a registration's events and data.
pub const EPOLL_CTL_MOD: i32 = 3;
/// `epoll_create1` flag: close-on-exec.
pub const EPOLL_CLOEXEC: u32 = O_CLOEXEC;

/// How deep sets may be nested below the one a set is added to (Linux's `EP_MAX_NESTS`).
pub const EP_MAX_NESTS: u32 = 4;

/// Linux's `struct epoll_event`: packed on x86_64 (12 bytes: the 64-bit `data` right
/// after `events`), naturally aligned elsewhere (16 bytes on aarch64).
#[cfg_attr(target_arch = "x86_64", repr(C, packed))]
#[cfg_attr(not(target_arch = "x86_64"), repr(C))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollEvent {
    /// Events asked for (`epoll_ctl`) or that hold (`epoll_wait`).
    pub events: u32,
    /// The caller's data, returned as given.
    pub data: u64,
}

/// The size of a `struct epoll_event` in caller memory: 12 on x86_64, 16 on aarch64.
pub const EPOLL_EVENT_SIZE: usize = size_of::<EpollEvent>();

impl EpollEvent {
    /// The event as the caller's ABI lays it out (native byte order).
    pub fn to_bytes(self) -> [u8; EPOLL_EVENT_SIZE] {
        let mut out = [0u8; EPOLL_EVENT_SIZE];
        out[..4].copy_from_slice(&{ self.events }.to_ne_bytes());
        out[EPOLL_EVENT_SIZE - 8..].copy_from_slice(&{ self.data }.to_ne_bytes());
        out
    }

    /// The event at the start of `bytes` (`None` if shorter than [`EPOLL_EVENT_SIZE`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<EpollEvent> {
        let bytes = bytes.get(..EPOLL_EVENT_SIZE)?;
        let mut events = [0u8; 4];
        events.copy_from_slice(&bytes[..4]);
        let mut data = [0u8; 8];
        data.copy_from_slice(&bytes[EPOLL_EVENT_SIZE - 8..]);
        Some(EpollEvent {
            events: u32::from_ne_bytes(events),
            data: u64::from_ne_bytes(data),
        })
    }
}

struct Registration {
    fd: Fd,
    file: Weak<OpenFile>,
    /// Asked-for events and private bits; only the private bits once a one-shot fired.
    events: u32,
    data: u64,
    /// The file's generation at the last report (edge-triggered); `None` since ADD/MOD.
    seen: Option<u64>,
}

#[derive(Default)]
struct State {
    regs: Vec<Registration>,
    /// Where the next scan starts.
    cursor: usize,
}

/// An epoll set: the object behind an epoll descriptor.
#[derive(Default)]
pub struct Epoll {
    state: Mutex<State>,
}

/// What a file reports now, and its generation (read first, see the module docs).
fn readiness(object: &Object, depth: u32) -> (u16, u64) {
    if let Some(own) = object.own_readiness() {
        return own;
    }
    match object {
        Object::Epoll(ep) => {
            let generation = readiness_epoch();
            let ready = !ep.scan(1, false, depth + 1).is_empty();
            (if ready { POLLIN | POLLRDNORM } else { 0 }, generation)
        }
        _ => (ALWAYS_READY, 0),
    }
}

impl Epoll {
    /// `POLLIN | POLLRDNORM` while something would be reported.
    pub(crate) fn poll_events(&self) -> u16 {
        if self.scan(1, false, 0).is_empty() {
            0
        } else {
            POLLIN | POLLRDNORM
        }
    }

    /// Up to `max` events that hold now; with `consume`, records them as reported (edge
    /// and one-shot state, the scan cursor).
    fn scan(&self, max: usize, consume: bool, depth: u32) -> Vec<EpollEvent> {
        let mut out = Vec::new();
        if depth > EP_MAX_NESTS || max == 0 {
            return out;
        }
        // Files looked at are dropped after the lock: the last reference to a file whose
        // descriptors were all closed meanwhile may go here, and its drop moves the epoch.
        let mut held = Vec::new();
        let mut st = self.state.lock();
        st.regs.retain(|r| r.file.strong_count() > 0);
        let n = st.regs.len();
        let start = if n == 0 { 0 } else { st.cursor % n };
        let mut last = None;
        for k in 0..n {
            if out.len() >= max {
                break;
            }
            let i = (start + k) % n;
            let r = &mut st.regs[i];
            let interest = r.events & !PRIVATE_BITS;
            if interest == 0 {
                continue;
            }
            let Some(file) = r.file.upgrade() else {
                continue;
            };
            let (ready, generation) = readiness(&file.object, depth);
            held.push(file);
            let revents = u32::from(ready) & interest;
            if revents == 0 || (r.events & EPOLLET != 0 && r.seen == Some(generation)) {
                continue;
            }
            out.push(EpollEvent {
                events: revents,
                data: r.data,
            });
            if consume {
                r.seen = Some(generation);
                if r.events & EPOLLONESHOT != 0 {
                    r.events &= PRIVATE_BITS;
                }
                last = Some(i);
            }
        }
        if let Some(i) = last {
            st.cursor = i + 1;
        }
        drop(st);
        drop(held);
        out
    }

    /// Whether `target` is reachable from this set through nested sets, or they nest
    /// deeper than [`EP_MAX_NESTS`] below it.
    fn reaches(&self, target: &Epoll, depth: u32) -> bool {
        if depth > EP_MAX_NESTS {
            return true;
        }
        let nested: Vec<Arc<OpenFile>> = self
            .state
            .lock()
            .regs
            .iter()
            .filter_map(|r| r.file.upgrade())
            .filter(|f| matches!(f.object, Object::Epoll(_)))
            .collect();
        nested.iter().any(|f| match &f.object {
            Object::Epoll(ep) => core::ptr::eq(ep, target) || ep.reaches(target, depth + 1),
            _ => false,
        })
    }
}

/// Serialises the additions of sets to sets, so two of them cannot make a loop together
/// (Linux's `epnested_mutex`).
static NESTING: Mutex<()> = Mutex::new(());

/// An epoll set held for waiting (from [`Vfs::epoll_instance`]): it stays usable while
/// the caller waits, even if its descriptor is closed meanwhile, as on Linux.
pub struct EpollInstance(Arc<OpenFile>);

impl EpollInstance {
    /// Up to `max` events that hold now (none if nothing is ready: the caller then waits
    /// for the readiness epoch to move and asks again). Edge-triggered registrations
    /// reported here are not reported again until their file changes; one-shot ones are
    /// disabled.
    pub fn collect(&self, max: usize) -> Vec<EpollEvent> {
        match &self.0.object {
            Object::Epoll(ep) => ep.scan(max, true, 0),
            _ => Vec::new(),
        }
    }
}

/// Whether `file` has readiness to watch (Linux's `file_can_poll`): pipes, eventfds, epoll
/// sets, timerfds and terminals; not regular files, directories or other devices.
fn can_poll(file: &OpenFile) -> bool {
    match &file.object {
        Object::Node(n) => {
            n.file_type() == FileType::CharDevice
                && n.ioctl(crate::devfs::TCGETS, &mut [0; crate::devfs::TERMIOS_SIZE])
                    .is_ok()
        }
        // Pipes and every anonymous file report readiness.
        Object::Pipe(_) => true,
        other => other.is_anonymous(),
    }
}

impl Vfs {
    /// `epoll_create1(flags)`: a new, empty epoll set on the lowest free descriptor;
    /// `flags` `0` or [`EPOLL_CLOEXEC`] (`EINVAL` otherwise); `EMFILE`.
    pub fn epoll_create1(&self, flags: u32) -> Result<Fd, Errno> {
        if flags & !EPOLL_CLOEXEC != 0 {
            return Err(Errno::EINVAL);
        }
        self.open_anonymous(Object::Epoll(Epoll::default()), flags)
    }

    /// `epoll_create(size)`: as `epoll_create1(0)`; `size` is a hint that must be above 0
    /// (`EINVAL`).
    pub fn epoll_create(&self, size: i32) -> Result<Fd, Errno> {
        if size <= 0 {
            return Err(Errno::EINVAL);
        }
        self.epoll_create1(0)
    }

    /// `epoll_ctl(epfd, op, fd, event)`: adds ([`EPOLL_CTL_ADD`]), changes
    /// ([`EPOLL_CTL_MOD`]) or removes ([`EPOLL_CTL_DEL`], `event` ignored) the registration
    /// of `fd` in the set `epfd`. Errors in Linux's order: `EBADF` (`epfd`, then `fd`),
    /// `EPERM` (`fd` has no readiness: a regular file, a directory, a device other than a
    /// terminal), `EINVAL` (`fd` is the set itself, `epfd` is no set, `EPOLLEXCLUSIVE`
    /// with `MOD`, on a set, or with bits other than in/out/err/hup/`EPOLLET`), `ELOOP`
    /// (a set that would contain itself or nest too deep), then `EEXIST` (`ADD` of a
    /// registered file), `ENOENT` (`MOD`/`DEL` of an unregistered one), `EINVAL` (a `MOD`
    /// of an exclusive registration, an unknown `op`). A refusal changes nothing.
    pub fn epoll_ctl(&self, epfd: Fd, op: i32, fd: Fd, event: EpollEvent) -> Result<(), Errno> {
        let epfile = self.file(epfd)?;
        let target = self.file(fd)?;
        if !can_poll(&target) {
            return Err(Errno::EPERM);
        }
        let Object::Epoll(ep) = &epfile.object else {
            return Err(Errno::EINVAL);
        };
        if Arc::ptr_eq(&epfile, &target) {
            return Err(Errno::EINVAL);
        }
        let has_event = op != EPOLL_CTL_DEL;
        let mut events = event.events;
        let exclusive_refused = op == EPOLL_CTL_MOD
            || (op == EPOLL_CTL_ADD
                && (matches!(target.object, Object::Epoll(_)) || events & !EXCLUSIVE_OK_BITS != 0));
        if has_event && events & EPOLLEXCLUSIVE != 0 && exclusive_refused {
            return Err(Errno::EINVAL);
        }
        let _nesting = match (&target.object, op) {
            (Object::Epoll(inner), EPOLL_CTL_ADD) => {
                let guard = NESTING.lock();
                if inner.reaches(ep, 1) {
                    return Err(Errno::ELOOP);
                }
                Some(guard)
            }
            _ => None,
        };
        events |= EPOLLERR | EPOLLHUP;
        let mut st = ep.state.lock();
        st.regs.retain(|r| r.file.strong_count() > 0);
        let found = st
            .regs
            .iter()
            .position(|r| r.fd == fd && core::ptr::eq(r.file.as_ptr(), Arc::as_ptr(&target)));
        match (op, found) {
            (EPOLL_CTL_ADD, Some(_)) => return Err(Errno::EEXIST),
            (EPOLL_CTL_ADD, None) => st.regs.push(Registration {
                fd,
                file: Arc::downgrade(&target),
                events,
                data: event.data,
                seen: None,
            }),
            (EPOLL_CTL_MOD | EPOLL_CTL_DEL, None) => return Err(Errno::ENOENT),
            (EPOLL_CTL_MOD, Some(i)) => {
                let r = &mut st.regs[i];
                if r.events & EPOLLEXCLUSIVE != 0 {
                    return Err(Errno::EINVAL);
                }
                r.events = events;
                r.data = event.data;
                r.seen = None;
            }
            (EPOLL_CTL_DEL, Some(i)) => {
                st.regs.remove(i);
            }
            _ => return Err(Errno::EINVAL),
        }
        drop(st);
        drop(target);
        // A thread waiting on this set (or on one holding it) looks again.
        readiness_changed();
        Ok(())
    }

    /// The epoll set open as `epfd`, to collect its events while waiting: `EBADF` if
    /// `epfd` is not open, `EINVAL` if it is no epoll set.
    pub fn epoll_instance(&self, epfd: Fd) -> Result<EpollInstance, Errno> {
        let f = self.file(epfd)?;
        match f.object {
            Object::Epoll(_) => Ok(EpollInstance(f)),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The live registrations of the set `epfd` (descriptor, events, data), in order.
    #[cfg(test)]
    pub(crate) fn epoll_registrations(&self, epfd: Fd) -> Vec<(Fd, u32, u64)> {
        match &self.file(epfd) {
            Ok(f) => match &f.object {
                Object::Epoll(ep) => ep
                    .state
                    .lock()
                    .regs
                    .iter()
                    .filter(|r| r.file.strong_count() > 0)
                    .map(|r| (r.fd, r.events, r.data))
                    .collect(),
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        }
    }

    /// `eventfd2(initval, flags)`: a new eventfd (see [`crate::eventfd`]) on the lowest
    /// free descriptor, open for reading and writing; `flags` from
    /// [`EFD_SEMAPHORE`](crate::eventfd::EFD_SEMAPHORE),
    /// [`EFD_NONBLOCK`](crate::eventfd::EFD_NONBLOCK),
    /// [`EFD_CLOEXEC`](crate::eventfd::EFD_CLOEXEC) (`EINVAL` for others); `EMFILE`.
    pub fn eventfd2(&self, initval: u32, flags: u32) -> Result<Fd, Errno> {
        use crate::eventfd::{EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, EventFd};
        if flags & !(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK) != 0 {
            return Err(Errno::EINVAL);
        }
        let object = Object::EventFd(EventFd::new(u64::from(initval), flags & EFD_SEMAPHORE != 0));
        self.open_anonymous(object, flags & (EFD_NONBLOCK | EFD_CLOEXEC))
    }
}
