//! What the binary entry does once the registers are saved, and the frame lookup for
//! handlers. Architecture independent; the entry assembly lives in `arch`.

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::{Args, TrapFrame};

/// The frame of the trapped call most recently entered that has not returned yet (null if
/// none). Only a live frame is ever stored: each trap clears it on its way out if it is
/// still its own, and never restores an older (possibly dead) one.
static CURRENT: AtomicPtr<TrapFrame> = AtomicPtr::new(core::ptr::null_mut());

impl TrapFrame {
    /// Where the arguments of the frame at `frame` are, without creating a reference (the
    /// offset is per architecture, the arithmetic is not).
    pub(crate) fn args_ptr(frame: *const Self) -> *const Args {
        frame
            .cast::<u8>()
            .wrapping_add(Self::ARGS_OFFSET)
            .cast::<Args>()
    }
}

/// Called by the entry assembly with the saved registers: dispatches the call and writes the
/// result into the frame, from where the assembly restores it.
///
/// # Safety
///
/// `frame` points to a frame the entry filled; it stays valid and is not accessed by
/// anyone else until this function returns.
pub(crate) unsafe extern "C" fn handle(frame: *mut TrapFrame) {
    CURRENT.store(frame, Ordering::Release);
    // SAFETY: the caller hands over a valid frame; the handler gets a shared reference into
    // it (so that `trap_frame` can find the frame from it), and no mutable reference exists
    // while the handler runs.
    let (number, args) = unsafe { ((*frame).number(), &*TrapFrame::args_ptr(frame)) };
    let result = crate::dispatch(number, args);
    let _ = CURRENT.compare_exchange(
        frame,
        core::ptr::null_mut(),
        Ordering::AcqRel,
        Ordering::Relaxed,
    );
    // SAFETY: the handler returned: no reference into the frame is left.
    unsafe { (*frame).set_result(result as usize) };
}

/// The frame of the trapped call whose handler received `args`.
///
/// The binary entry passes its handler an `&Args` that points into the saved frame; this
/// recognises that reference. It returns `None` for a direct call (a Rust caller calling a
/// handler or [`crate::dispatch`] with its own `Args`), and may return `None` in a handler
/// that blocked before asking, if another call trapped meanwhile: read it first. It never
/// returns the frame of another call.
///
/// The process layer uses it for `clone`: the child starts from a copy of the parent's
/// frame (see [`crate::resume_frame`]).
pub fn trap_frame(args: &Args) -> Option<&TrapFrame> {
    let current = CURRENT.load(Ordering::Acquire);
    if current.is_null() {
        return None;
    }
    // Compare addresses only: `current` is dereferenced only when it is the frame `args`
    // lies in, which then lives at least as long as `args`.
    if !core::ptr::eq(TrapFrame::args_ptr(current), args) {
        return None;
    }
    // SAFETY: `args` is the `args` field of the frame at `current` (same address), so that
    // frame is alive for at least the lifetime of `args`; it is only read while the handler
    // runs (the entry writes it again after the handler returned).
    Some(unsafe { &*current })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Errno;

    use crate::testing::{CAPTURE, sys_capture, take_captured};

    #[test]
    fn handle_dispatches_and_finds_the_frame() {
        let _serial = crate::TRAP_LOCK.lock();
        let _ = take_captured();
        let mut frame = TrapFrame::zeroed();
        frame.set_number(CAPTURE);
        frame.args = [40, 0, 0, 0, 0, 2];
        // SAFETY: a valid frame nobody else uses.
        unsafe { handle(&mut frame) };
        assert_eq!(frame.result(), 1, "the handler found its frame");
        assert!(CURRENT.load(Ordering::Relaxed).is_null(), "cleared on exit");
        let captured = take_captured().expect("captured");
        assert_eq!(*captured.args(), [40, 0, 0, 0, 0, 2]);
        assert_eq!(captured.number(), CAPTURE);
        // A direct call of the same handler: no frame.
        assert_eq!(sys_capture(&[1, 0, 0, 0, 0, 1]), Err(Errno::ESRCH));
        assert_eq!(
            crate::dispatch(CAPTURE, &[1; 6]),
            -(Errno::ESRCH.into_raw() as isize)
        );
    }

    #[test]
    fn unknown_number_through_the_frame_is_enosys() {
        let _serial = crate::TRAP_LOCK.lock();
        let mut frame = TrapFrame::zeroed();
        frame.set_number(usize::MAX);
        // SAFETY: as above.
        unsafe { handle(&mut frame) };
        assert_eq!(
            frame.result() as isize,
            -(Errno::ENOSYS.into_raw() as isize)
        );
    }

    #[test]
    fn another_calls_frame_is_never_returned() {
        let _serial = crate::TRAP_LOCK.lock();
        let mut other = TrapFrame::zeroed();
        CURRENT.store(&mut other, Ordering::Release);
        let mine = [0usize; 6];
        assert!(trap_frame(&mine).is_none());
        assert!(trap_frame(&other.args).is_some());
        let _ = CURRENT.compare_exchange(
            &mut other,
            core::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}
