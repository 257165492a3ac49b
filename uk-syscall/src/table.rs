//! The dispatch table: registrations collected by `linkme`, indexed by number on first use.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use crate::{Args, Errno, Handler, SyscallResult, Sysno};

/// One handler registration, as [`crate::register!`] emits it.
#[derive(Debug)]
pub struct Registration {
    /// The syscall number on the target architecture.
    pub number: usize,
    /// The handler for it.
    pub handler: Handler,
}

/// Every registration linked into the image.
#[linkme::distributed_slice]
pub static REGISTRATIONS: [Registration];

/// Larger than the highest syscall number of either architecture (x86_64 and aarch64 both
/// stay below 512 in Linux 6.x).
const TABLE_LEN: usize = 512;

/// Handler addresses by number; 0 = none. Filled once by [`build`].
static TABLE: [AtomicUsize; TABLE_LEN] = [const { AtomicUsize::new(0) }; TABLE_LEN];
/// 0 = not built, 1 = being built, 2 = built.
static BUILT: AtomicU8 = AtomicU8::new(0);
/// One bit per number: "ENOSYS already logged".
static LOGGED: [AtomicBool; TABLE_LEN] = [const { AtomicBool::new(false) }; TABLE_LEN];

fn build() {
    if BUILT
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        while BUILT.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
        return;
    }
    for registration in REGISTRATIONS.iter() {
        let Some(slot) = TABLE.get(registration.number) else {
            log::error!(
                "syscall number {} is out of the table's range; not registered",
                registration.number
            );
            continue;
        };
        let address = registration.handler as usize;
        if let Err(existing) =
            slot.compare_exchange(0, address, Ordering::Relaxed, Ordering::Relaxed)
        {
            if existing != address {
                log::error!(
                    "two handlers registered for {}; keeping the first",
                    name(registration.number)
                );
            }
        }
    }
    BUILT.store(2, Ordering::Release);
}

fn name(number: usize) -> &'static str {
    Sysno::new(number).map_or("an unknown syscall", |sysno| sysno.name())
}

/// The handler registered for `number`, if any.
pub fn handler(number: usize) -> Option<Handler> {
    if BUILT.load(Ordering::Acquire) != 2 {
        build();
    }
    let address = TABLE.get(number)?.load(Ordering::Relaxed);
    if address == 0 {
        return None;
    }
    // SAFETY: every non-zero entry was stored by `build` from a `Handler` function pointer,
    // and function pointers round-trip through `usize` on every target we build for.
    Some(unsafe { core::mem::transmute::<usize, Handler>(address) })
}

fn call(number: usize, args: &Args) -> SyscallResult {
    match handler(number) {
        Some(handler) => handler(args),
        None => {
            let index = number.min(TABLE_LEN - 1);
            if !LOGGED[index].swap(true, Ordering::Relaxed) {
                log::warn!(
                    "syscall {} ({number}) is not implemented: ENOSYS",
                    name(number)
                );
            }
            Err(Errno::ENOSYS)
        }
    }
}

/// Calls the handler for `number` and returns Linux's raw result: the value, or a negated
/// errno in `-4095..=-1`.
pub fn dispatch(number: usize, args: &Args) -> isize {
    match call(number, args) {
        Ok(value) => value as isize,
        Err(errno) => -(errno.into_raw() as isize),
    }
}

/// Calls the handler for `number` with C's convention: the value, or `-1` with the error
/// stored through `errno`.
pub fn dispatch_errno(number: usize, args: &Args, errno: &mut i32) -> isize {
    match call(number, args) {
        Ok(value) => value as isize,
        Err(error) => {
            *errno = error.into_raw();
            -1
        }
    }
}

/// Folds a raw Linux result into a [`SyscallResult`] (`-4095..=-1` is an error).
pub fn errno(raw: isize) -> SyscallResult {
    Errno::from_ret(raw as usize)
}
