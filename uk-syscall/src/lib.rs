//! Linux syscalls as plain function calls, and a dispatch table the binary entry reaches.
//!
//! Unikraft 0.11's syscall shim lets an application inside the image call a syscall as an
//! ordinary function, while a binary (a libc compiled for Linux) reaches the same handlers
//! through the `syscall` instruction. This crate is that seam for uk-rs:
//!
//! - **Numbers and errors come from a well-kept source.** [`Sysno`] (per architecture:
//!   [`x86_64::Sysno`], [`aarch64::Sysno`]) and [`Errno`] are re-exported from the
//!   [`syscalls`] crate, so no number is typed by hand here.
//! - **Handlers register themselves at link time.** A subsystem (the process layer, the VFS)
//!   writes `uk_syscall::register!(getpid => sys_getpid);` next to its handler; the entry
//!   lands in a `linkme` distributed slice, so an image gets exactly the handlers of the
//!   crates it links and nobody has to call an init function in the right order.
//! - **Dispatch by number** goes through [`dispatch`], which looks the number up in a table
//!   built once from the slice. An unknown number returns `-ENOSYS` and logs one line naming
//!   the syscall, once per number.
//!
//! A [`Handler`] takes the six raw argument registers and returns `Result<usize, Errno>`;
//! [`dispatch`] folds that into Linux's raw convention (a result in `-4095..=-1` is an
//! error) and [`dispatch_errno`] into the C convention (`-1` and `errno`).
//!
//! # Example
//!
//! ```
//! use uk_syscall::{Args, Errno, SyscallResult};
//!
//! fn sys_getuid(_args: &Args) -> SyscallResult {
//!     Ok(0)
//! }
//! uk_syscall::register!(getuid => sys_getuid);
//!
//! let getuid = uk_syscall::Sysno::getuid as usize;
//! assert_eq!(uk_syscall::dispatch(getuid, &[0; 6]), 0);
//! // A number nobody registered: -ENOSYS.
//! let tkill = uk_syscall::Sysno::tkill as usize;
//! assert_eq!(uk_syscall::dispatch(tkill, &[0; 6]), -(Errno::ENOSYS.into_raw() as isize));
//! ```
#![no_std]

#[cfg(test)]
extern crate std;

mod arch;
#[cfg(feature = "ktest")]
mod ktest;
mod table;
#[cfg(any(test, feature = "ktest"))]
pub mod testing;
mod trap;

pub use arch::{InstallError, TrapFrame, install, resume_frame, trap};
pub use syscalls::Errno;
pub use syscalls::{aarch64, x86_64};
pub use table::{
    REGISTRATIONS, Registration, TABLE_LEN, TableStats, dispatch, dispatch_errno, errno, handler,
    name, raw, table_stats,
};
pub use trap::trap_frame;

/// The syscall numbers of the architecture this crate is built for.
#[cfg(target_arch = "aarch64")]
pub use syscalls::aarch64::Sysno;
/// The syscall numbers of the architecture this crate is built for.
#[cfg(target_arch = "x86_64")]
pub use syscalls::x86_64::Sysno;

#[doc(hidden)]
pub use linkme as __linkme;

/// Serialises the host tests that use the trap path's global "current frame".
#[cfg(test)]
pub(crate) static TRAP_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The six argument registers of a syscall, in Linux's order (x86_64: rdi, rsi, rdx, r10, r8,
/// r9; aarch64: x0–x5).
pub type Args = [usize; 6];

/// What a handler returns: the value for the caller's return register, or an error.
pub type SyscallResult = Result<usize, Errno>;

/// A syscall handler: an ordinary Rust function, callable directly or through [`dispatch`].
pub type Handler = fn(&Args) -> SyscallResult;

/// Registers `handler` for the syscall named `name` (a [`Sysno`] variant of the target
/// architecture) at link time; `register!(number N => handler)` registers a raw number
/// (a private one, `500..512`, that Linux does not use: tests, image-specific calls).
///
/// Registering two handlers for one number is a configuration error: the table keeps the
/// first in link order, ignores the other and logs the conflict once, when it is built
/// ([`table_stats`] counts it). A number not below [`TABLE_LEN`] is ignored and logged.
#[macro_export]
macro_rules! register {
    ($name:ident => $handler:path) => {
        $crate::register!(number $crate::Sysno::$name as usize => $handler);
    };
    (number $number:expr => $handler:path) => {
        const _: () = {
            #[$crate::__linkme::distributed_slice($crate::REGISTRATIONS)]
            #[linkme(crate = $crate::__linkme)]
            static REGISTRATION: $crate::Registration = $crate::Registration {
                number: $number,
                handler: $handler,
            };
        };
    };
}
