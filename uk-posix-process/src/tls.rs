//! `arch_prctl` (x86_64): the calling thread's FS base, which is its TLS thread pointer.
//!
//! A libc sets its thread pointer with `arch_prctl(ARCH_SET_FS, tcb)` when a program starts
//! (each later thread gets its own through `clone(CLONE_SETTLS)`). The value is kept in the
//! calling uk-sched thread, so that the scheduler installs it whenever the thread runs, and
//! installed in the CPU at once. `ARCH_GET_FS` writes it back to caller memory.
//!
//! GS is not the program's: on x86-pc the GS base holds the CPU's own block (interrupt and
//! per-CPU state), so `ARCH_SET_GS` and `ARCH_GET_GS` are refused with `EPERM` rather than
//! letting a program move it. Other codes are `EINVAL`, as on Linux.
// One unsafe call: installing the caller's thread pointer (`ThreadHost::set_thread_pointer`).
#![allow(unsafe_code)]

use uk_context::{ContextOps, Native};
use uk_syscall::Errno;
use uk_syscall::user::UserPtr;

use crate::system::System;

/// `arch_prctl` code: set the GS base (refused here).
pub const ARCH_SET_GS: i32 = 0x1001;
/// `arch_prctl` code: set the FS base (the thread pointer).
pub const ARCH_SET_FS: i32 = 0x1002;
/// `arch_prctl` code: read the FS base into caller memory.
pub const ARCH_GET_FS: i32 = 0x1003;
/// `arch_prctl` code: read the GS base (refused here).
pub const ARCH_GET_GS: i32 = 0x1004;

/// Whether `addr` is a canonical x86_64 address (bits 63..47 all equal): the only values
/// the FS base register accepts without a fault.
fn canonical(addr: usize) -> bool {
    let top = (addr as u64) >> 47;
    top == 0 || top == (1 << 17) - 1
}

impl System {
    /// The calling thread's thread pointer: its own if it has one, else whatever the CPU
    /// has installed now (what `ARCH_GET_FS` reports and a clone without `CLONE_SETTLS`
    /// inherits).
    pub(crate) fn caller_thread_pointer(&self) -> usize {
        match uk_sched::current().map_or(0, |t| t.thread_pointer()) {
            0 => match self.host() {
                Some(host) => host.thread_pointer(),
                None => Native::detect().thread_pointer(),
            },
            own => own,
        }
    }

    /// `arch_prctl(code, addr)`: sets (`ARCH_SET_FS`) or reads into `*addr`
    /// (`ARCH_GET_FS`) the calling thread's thread pointer.
    ///
    /// # Errors
    ///
    /// `EPERM` for a non-canonical address and for the GS codes, `EFAULT` when `addr` is not
    /// writable caller memory (`ARCH_GET_FS`), `EINVAL` for any other code. Nothing changes
    /// on an error.
    pub fn arch_prctl(&self, code: i32, addr: usize) -> Result<usize, Errno> {
        match code {
            ARCH_SET_FS => {
                if !canonical(addr) {
                    return Err(Errno::EPERM);
                }
                if let Some(me) = uk_sched::current() {
                    me.set_thread_pointer(addr);
                }
                match self.host() {
                    // SAFETY: nothing in the image reads through the thread pointer but the
                    // calling thread's own TLS accesses, and the caller asked for this
                    // value; as on Linux, a wrong one only breaks those accesses.
                    Some(host) => unsafe { host.set_thread_pointer(addr) },
                    // No scheduler installed (the boot context): the CPU's own register.
                    // SAFETY: as above.
                    None => unsafe { Native::detect().set_thread_pointer(addr) },
                }
                Ok(0)
            }
            ARCH_GET_FS => {
                let tp = self.caller_thread_pointer();
                UserPtr::<u64>::new(addr).write(&self.address_space(), tp as u64)?;
                Ok(0)
            }
            ARCH_SET_GS | ARCH_GET_GS => Err(Errno::EPERM),
            _ => Err(Errno::EINVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_addresses() {
        assert!(canonical(0));
        assert!(canonical(0x0000_7fff_ffff_ffff));
        assert!(canonical(0xffff_8000_0000_0000));
        assert!(canonical(usize::MAX));
        assert!(!canonical(0x0000_8000_0000_0000));
        assert!(!canonical(0x8000_0000_0000_0000));
        assert!(!canonical(0xffff_7fff_ffff_ffff));
    }
}
