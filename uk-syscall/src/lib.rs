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
//!   built once from the slice, lazily and without a lock (concurrent or re-entrant
//!   builders do the same idempotent walk, so a dispatch never waits). Two handlers for one
//!   number: the first in link order serves, the conflict is logged once and counted by
//!   [`table_stats`]. An unknown number returns `-ENOSYS` and logs one line naming the
//!   syscall, once per number (numbers beyond the table: the first 16 distinct ones, then
//!   one notice; the memory for this is bounded).
//! - **The binary entry reaches the same table.** On x86_64 the `syscall` instruction
//!   (executed at CPL 0 inside the image) enters through `LSTAR`; on aarch64 `svc #0` at
//!   EL1 traps to the board's synchronous vector, which branches to this crate's entry. Both
//!   build a [`TrapFrame`] on the caller's own stack below a 128-byte red zone (so the red
//!   zone survives and a handler that blocks keeps its frame with its thread), save every
//!   general register and the FP/SIMD state (x87/SSE/AVX with `XSAVE`, or `FXSAVE`; q0–q31,
//!   FPSR, FPCR), run the handler with the caller's interrupt mask, and return with every
//!   register but the result (and, on x86_64, rcx/r11 as Linux leaves them) as it was.
//! - **Installation is automatic** for the uk-rs boards: they reach this crate through a
//!   weak reference to a symbol it defines (`uk_syscall_cpu_init` on x86_64, called at
//!   boot, which writes `EFER.SCE`, `STAR`, `LSTAR`, `SFMASK`; `uk_syscall_svc_entry` on
//!   aarch64, which the vector branches to), so linking the crate is enough. Another
//!   kernel calls [`install`] on each CPU (x86_64) and branches to the entry from its own
//!   vector (aarch64; the contract is in the `arch` module's docs and the board's vector).
//! - **Clone support.** A handler finds the frame of its trapped call with
//!   [`trap_frame`] (every live trapped call has a slot of its own, up to
//!   [`LIVE_FRAMES`], so this works on every CPU and while other calls block);
//!   [`resume_frame`] starts a copy of a frame on a new stack "returning from the trap"
//!   (the child of `clone` returns 0 with its parent's registers).
//! - **What still traps is visible.** [`trapped_calls`] counts, per number, the calls that
//!   came through the binary entry (direct calls are not counted), so an image can check
//!   that its libc's system calls really are function calls.
//!
//! - **Caller memory has one owner.** Every pointer a handler receives is checked through
//!   [`user`] against the image's caller memory (declared once: the board's RAM regions
//!   and the image) before it is touched: `NULL`, the NULL page, memory outside and
//!   wrapping ranges give `EFAULT`, an empty buffer is valid anywhere, a path runs to its
//!   NUL within a limit (`ENAMETOOLONG`), a futex word must be aligned (`EINVAL`). The VFS,
//!   the process layer and an image's own handlers share it, so they agree on what a bad
//!   pointer is, and none of them needs `unsafe` to reach caller memory.
//!
//! A [`Handler`] takes the six raw argument registers and returns `Result<usize, Errno>`;
//! [`dispatch`] folds that into Linux's raw convention (a result in `-4095..=-1` is an
//! error) and [`dispatch_errno`] into the C convention (`-1` and `errno`, errno left alone on
//! success). An `Err` outside `1..=4095` (a handler bug that would read as success) becomes
//! `EINVAL`. [`uk_syscall6`] is [`dispatch`] with a C ABI (for a libc's `__syscall` turned
//! into direct calls). [`trap`] executes the trap instruction itself (in a Linux process it is a real
//! Linux syscall, which the benchmarks use as the peer).
//!
//! # Features
//!
//! - `ktest`: registers in-image test cases with `uk-test`: through the real trap, results
//!   equal direct calls, every register and the FP/SIMD state survive a handler that
//!   scrambles them, the red zone is untouched, unknown numbers give `-ENOSYS`, a frame
//!   resumed on a new stack returns there; caller memory is the image and the board's RAM,
//!   and a handler given bad pointers through the trap returns `-EFAULT`. Implies `image`.
//!   Also exposes the probes in `testing`.
//! - `image`: on a uk-rs image (`target_os = "none"`), caller memory nobody declared with
//!   [`user::declare`] is the image's extent (the boards' `__uk_image_start` and
//!   `__uk_image_end`) plus `uk_rt::platform().memory_regions()`, read on first use once the
//!   board has registered. `uk-posix-process` enables it; an image without the process
//!   layer enables it itself. Another kernel leaves it off and calls [`user::declare`].
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
//! let kexec_load = uk_syscall::Sysno::kexec_load as usize;
//! assert_eq!(uk_syscall::dispatch(kexec_load, &[0; 6]), -(Errno::ENOSYS.into_raw() as isize));
//! // The C convention.
//! let mut errno = 0;
//! assert_eq!(uk_syscall::dispatch_errno(kexec_load, &[0; 6], &mut errno), -1);
//! assert_eq!(errno, Errno::ENOSYS.into_raw());
//! // A direct call has no trap frame.
//! assert!(uk_syscall::trap_frame(&[0; 6]).is_none());
//! ```
//!
//! Inside an image, the same handler through the trap instruction:
//!
//! ```ignore
//! // SAFETY: getuid touches no memory.
//! let uid = unsafe { uk_syscall::trap(uk_syscall::Sysno::getuid as usize, &[0; 6]) };
//! assert_eq!(uid, 0);
//! ```
#![no_std]

#[cfg(test)]
extern crate std;

mod arch;
#[cfg(feature = "ktest")]
mod ktest;
mod table;
#[cfg(any(test, feature = "ktest"))]
#[doc(hidden)]
pub mod testing;
mod trap;
pub mod user;

pub use arch::{InstallError, TrapFrame, install, resume_frame, trap};
pub use syscalls::Errno;
pub use syscalls::{aarch64, x86_64};
pub use table::{
    CallBracket, REGISTRATIONS, Registration, TABLE_LEN, TableStats, dispatch, dispatch_errno,
    errno, handler, name, raw, set_call_bracket, set_return_hook, table_stats, uk_syscall6,
};
pub use trap::{LIVE_FRAMES, trap_frame, trapped_calls};

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
