//! What the binary entry does once the registers are saved, and the frame lookup for
//! handlers. Architecture independent; the entry assembly lives in `arch`.

use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::{Args, TABLE_LEN, TrapFrame};

/// How many calls of each number below [`TABLE_LEN`] came through the binary entry.
static TRAPPED: [AtomicU32; TABLE_LEN] = [const { AtomicU32::new(0) }; TABLE_LEN];

/// How many calls of `number` have come through the binary entry (`syscall` / `svc #0`)
/// since boot: 0 for numbers nobody trapped with, and for numbers not below [`TABLE_LEN`]
/// (which are not counted). Direct calls ([`crate::dispatch`], [`crate::uk_syscall6`]) are
/// not counted, so an image can tell which of its callers still trap: a libc whose
/// `__syscall` was turned into direct calls, say, traps only from its own assembly.
/// The count wraps after `u32::MAX` calls.
pub fn trapped_calls(number: usize) -> u32 {
    TRAPPED
        .get(number)
        .map_or(0, |count| count.load(Ordering::Relaxed))
}

/// Most trapped calls whose frames [`trap_frame`] can find at once. A call that finds every
/// slot taken still runs; only its handler cannot see its frame (`clone` through it fails).
pub const LIVE_FRAMES: usize = 64;

/// The frames of the trapped calls that have not returned yet, each in a slot of its own
/// (null: free). A trap claims the first free slot on entry and frees it on its way out, so
/// a slot only ever holds a live frame, whichever CPU trapped and however long its handler
/// blocks.
static LIVE: [AtomicPtr<TrapFrame>; LIVE_FRAMES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; LIVE_FRAMES];

/// Records `frame` as live; returns its slot, or `None` if every slot is taken.
fn claim_slot(frame: *mut TrapFrame) -> Option<&'static AtomicPtr<TrapFrame>> {
    LIVE.iter().find(|slot| {
        slot.compare_exchange(
            core::ptr::null_mut(),
            frame,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
    })
}

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
    let slot = claim_slot(frame);
    // SAFETY: the caller hands over a valid frame; the handler gets a shared reference into
    // it (so that `trap_frame` can find the frame from it), and no mutable reference exists
    // while the handler runs.
    let (number, args) = unsafe { ((*frame).number(), &*TrapFrame::args_ptr(frame)) };
    // Counted before the handler runs: some (exit, exit_group) never return.
    if let Some(count) = TRAPPED.get(number) {
        count.fetch_add(1, Ordering::Relaxed);
    }
    let result = crate::dispatch(number, args);
    if let Some(slot) = slot {
        slot.store(core::ptr::null_mut(), Ordering::Release);
    }
    // SAFETY: the handler returned: no reference into the frame is left.
    unsafe { (*frame).set_result(result as usize) };
}

/// The frame of the trapped call whose handler received `args`.
///
/// The binary entry passes its handler an `&Args` that points into the saved frame; this
/// recognises that reference, on any CPU and however many other calls trapped or blocked
/// meanwhile. It returns `None` for a direct call (a Rust caller calling a handler or
/// [`crate::dispatch`] with its own `Args`), and for a trapped call that found all
/// [`LIVE_FRAMES`] slots taken. It never returns the frame of another call.
///
/// The process layer uses it for `clone`: the child starts from a copy of the parent's
/// frame (see [`crate::resume_frame`]).
pub fn trap_frame(args: &Args) -> Option<&TrapFrame> {
    // Compare addresses only: a frame is dereferenced only when it is the one `args` lies
    // in, which then lives at least as long as `args`.
    let frame = LIVE
        .iter()
        .map(|slot| slot.load(Ordering::Acquire))
        .find(|&frame| !frame.is_null() && core::ptr::eq(TrapFrame::args_ptr(frame), args))?;
    // SAFETY: `args` is the `args` field of the frame at `frame` (same address), so that
    // frame is alive for at least the lifetime of `args`; it is only read while the handler
    // runs (the entry writes it again after the handler returned).
    Some(unsafe { &*frame })
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
        assert!(
            LIVE.iter()
                .all(|slot| slot.load(Ordering::Relaxed).is_null()),
            "its slot is free again on exit"
        );
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
        let slot = claim_slot(&mut other).expect("a free slot");
        let mine = [0usize; 6];
        assert!(trap_frame(&mine).is_none());
        assert!(core::ptr::eq(
            trap_frame(&other.args).expect("live"),
            &raw const other
        ));
        slot.store(core::ptr::null_mut(), Ordering::Release);
        assert!(trap_frame(&other.args).is_none(), "no longer live");
    }

    /// A call that traps while others are live (blocked handlers, other CPUs) still finds
    /// its own frame, and theirs stay findable; with every slot taken the call still runs
    /// and only its frame is unknown.
    #[test]
    fn frames_stay_findable_while_others_are_live() {
        let _serial = crate::TRAP_LOCK.lock();
        let _ = take_captured();
        let mut blocked = std::vec![TrapFrame::zeroed(); 3];
        let slots = claim_all(&mut blocked);
        let mut frame = TrapFrame::zeroed();
        frame.set_number(CAPTURE);
        frame.args = [40, 0, 0, 0, 0, 2];
        // SAFETY: a valid frame nobody else uses.
        unsafe { handle(&mut frame) };
        assert_eq!(frame.result(), 1, "found among other live frames");
        for f in &blocked {
            assert!(core::ptr::eq(trap_frame(&f.args).expect("live"), f));
        }
        release_all(slots);
        // Every slot taken: the call runs, its handler sees no frame (ESRCH here).
        let mut many = std::vec![TrapFrame::zeroed(); LIVE_FRAMES];
        let slots = claim_all(&mut many);
        let mut last = TrapFrame::zeroed();
        last.set_number(CAPTURE);
        // SAFETY: as above.
        unsafe { handle(&mut last) };
        assert_eq!(
            last.result() as isize,
            -(Errno::ESRCH.into_raw() as isize),
            "no slot, no frame"
        );
        release_all(slots);
        let _ = take_captured();
    }

    /// Marks every frame of `frames` live, as if each call had trapped and blocked.
    fn claim_all(frames: &mut [TrapFrame]) -> std::vec::Vec<&'static AtomicPtr<TrapFrame>> {
        frames
            .iter_mut()
            .map(|f| claim_slot(f).expect("a free slot"))
            .collect()
    }

    /// Frees slots taken by [`claim_all`], as the calls returning would.
    fn release_all(slots: std::vec::Vec<&'static AtomicPtr<TrapFrame>>) {
        for slot in slots {
            slot.store(core::ptr::null_mut(), Ordering::Release);
        }
    }
}
