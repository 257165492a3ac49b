//! The binary entry per architecture: the saved frame, the entry assembly, the return path
//! and the CPU setup.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::{InstallError, TrapFrame, install, resume_frame, trap};

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(all(target_arch = "x86_64", any(test, feature = "ktest")))]
pub(crate) use x86_64::uk_syscall_entry as x86_64_entry;
#[cfg(target_arch = "x86_64")]
pub use x86_64::{InstallError, TrapFrame, install, resume_frame, trap};
#[cfg(all(target_arch = "x86_64", test))]
pub(crate) use x86_64::{detect_extended_state, set_extended_state_mask};
