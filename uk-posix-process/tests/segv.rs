//! Memory faults become `SIGSEGV` (`uk_posix_process::fault`): the layer's fault hook runs
//! the handler of a thread in application code with `si_addr`, the right `si_code` and the
//! faulting registers, resumes where the handler says, and leaves every fault it must not
//! handle (a system call's, a blocked, ignored or default `SIGSEGV`, a second fault inside
//! the handler) to the board. The fault is played by calling the hook from the thread, as
//! a board does on the faulting thread's stack.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{on_signal, world};
use uk_hal::fault::{FaultAccess, FaultOutcome, MemoryFault};
use uk_hal::irq::{GENERAL_REGISTERS, InterruptedRegisters, PC_REGISTER, RegisterSlot};
use uk_posix_process::interrupt::{
    IN_APPLICATION, enter_application_code, state, syscall_entered, syscall_leaving,
};
use uk_posix_process::signal::{
    SA_NODEFER, SA_RESETHAND, SA_SIGINFO, SEGV_ACCERR, SEGV_MAPERR, SIG_BLOCK, SIG_UNBLOCK,
    SIGSEGV, SigInfo, sig_bit,
};
use uk_posix_process::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, System};

/// What the last handler saw: signal, `si_code`, `si_addr`, the program counter, the
/// thread's state, and whether `SIGSEGV` was blocked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    sig: i32,
    code: i32,
    addr: usize,
    pc: u64,
    state: usize,
    blocked: bool,
}

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
static RUNS: AtomicUsize = AtomicUsize::new(0);
/// The program counter the handler moves the faulting code to.
const MOVED_PC: u64 = 0x4000_5678;
/// Where `uc_mcontext`'s registers start in the context, in words.
const UC_REGISTERS_WORD: usize = if cfg!(target_arch = "aarch64") { 23 } else { 5 };

/// The layer of the running test.
static SYSTEM: Mutex<Option<&'static System>> = Mutex::new(None);
/// Where the handler faults once more (taken by the handler, so it nests one level only).
static NESTED: Mutex<Option<usize>> = Mutex::new(None);

extern "C" fn on_segv(sig: i32, info: *mut SigInfo, context: *mut u64) {
    RUNS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: test only: the layer passes a live siginfo and a context of its full size.
    let (info, registers) = unsafe {
        (
            *info,
            std::slice::from_raw_parts_mut(context.add(UC_REGISTERS_WORD), GENERAL_REGISTERS),
        )
    };
    let sys = SYSTEM.lock().unwrap().expect("the test set its layer");
    let mask = sys.rt_sigprocmask(SIG_BLOCK, None).unwrap();
    *SEEN.lock().unwrap() = Some(Seen {
        sig,
        code: info.code,
        addr: info.addr(),
        pc: registers[PC_REGISTER],
        state: state().unwrap(),
        blocked: mask & sig_bit(SIGSEGV) != 0,
    });
    registers[PC_REGISTER] = MOVED_PC;
    // A fault inside the handler, where the test asks for one: what the layer answered.
    let nested = NESTED.lock().unwrap().take();
    if let Some(addr) = nested {
        let mut frame = fake_frame();
        let outcome = sys.memory_fault(&read_at(addr), &registers_of(&mut frame));
        NESTED_OUTCOME.lock().unwrap().replace(outcome);
    }
}

static NESTED_OUTCOME: Mutex<Option<FaultOutcome>> = Mutex::new(None);

/// A fake board's fault frame: register `n` in word `n`, all writable.
static LAYOUT: [RegisterSlot; GENERAL_REGISTERS] = {
    let mut layout = [RegisterSlot::Absent; GENERAL_REGISTERS];
    let mut n = 0;
    while n < GENERAL_REGISTERS {
        layout[n] = RegisterSlot::Word(n as u16);
        n += 1;
    }
    layout
};

fn fake_frame() -> [usize; GENERAL_REGISTERS] {
    std::array::from_fn(|n| 0x700 + n)
}

fn registers_of(frame: &mut [usize; GENERAL_REGISTERS]) -> InterruptedRegisters {
    // SAFETY: the layout names words 0..GENERAL_REGISTERS of `frame`, which outlives every
    // use in these tests (the call the registers are handed to).
    unsafe { InterruptedRegisters::new(std::ptr::NonNull::from(frame).cast(), &LAYOUT) }
}

fn read_at(addr: usize) -> MemoryFault {
    MemoryFault {
        addr,
        access: FaultAccess::Read,
    }
}

/// Offers a read fault at `addr` with a fresh fake frame; the outcome and the frame after.
fn fault(sys: &System, addr: usize) -> (FaultOutcome, [usize; GENERAL_REGISTERS]) {
    let mut frame = fake_frame();
    let outcome = sys.memory_fault(&read_at(addr), &registers_of(&mut frame));
    (outcome, frame)
}

fn take_seen() -> Option<Seen> {
    SEEN.lock().unwrap().take()
}

const SEGV_HANDLER: fn() -> usize = || on_segv as *const () as usize;

/// One test at a time: the statics above are shared.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_fault_in_application_code_runs_the_handler_and_resumes_where_it_says() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = world();
    let sys = w.sys;
    *SYSTEM.lock().unwrap() = Some(sys);
    let status = w.run(move || {
        on_signal(sys, SIGSEGV, SEGV_HANDLER(), SA_SIGINFO);
        // Not in application code (the thread never ran any): the board reports it.
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Unhandled);
        assert_eq!(take_seen(), None);

        enter_application_code();
        let none = sys
            .mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            .unwrap();
        let (outcome, frame) = fault(sys, none + 12);
        assert_eq!(outcome, FaultOutcome::Resume);
        let seen = take_seen().expect("the handler ran");
        assert_eq!(
            seen,
            Seen {
                sig: SIGSEGV,
                code: SEGV_ACCERR,
                addr: none + 12,
                pc: 0x700 + PC_REGISTER as u64,
                state: IN_APPLICATION,
                blocked: true,
            }
        );
        assert_eq!(
            frame[PC_REGISTER], MOVED_PC as usize,
            "resumes where the handler said"
        );
        assert!(
            (0..GENERAL_REGISTERS)
                .filter(|&n| n != PC_REGISTER)
                .all(|n| frame[n] == 0x700 + n)
        );
        assert_eq!(state(), Some(IN_APPLICATION));
        // The mask is back: SIGSEGV is not blocked after the handler.
        let mask = sys.rt_sigprocmask(SIG_BLOCK, None).unwrap();
        assert_eq!(mask & sig_bit(SIGSEGV), 0);

        // Nothing mapped there: SEGV_MAPERR, and a 64-bit address survives si_addr.
        let far = 0x7fff_1234_5000usize;
        assert_eq!(fault(sys, far).0, FaultOutcome::Resume);
        let seen = take_seen().unwrap();
        assert_eq!((seen.code, seen.addr), (SEGV_MAPERR, far));
        sys.munmap(none, 4096).unwrap();
        assert_eq!(fault(sys, none).0, FaultOutcome::Resume);
        assert_eq!(take_seen().unwrap().code, SEGV_MAPERR, "unmapped since");

        // Inside a system call the layer leaves it to the board.
        let outer = syscall_entered();
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Unhandled);
        syscall_leaving(outer);
        assert_eq!(take_seen(), None);
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn a_blocked_ignored_or_default_segv_stays_fatal() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = world();
    let sys = w.sys;
    *SYSTEM.lock().unwrap() = Some(sys);
    let status = w.run(move || {
        enter_application_code();
        let runs = RUNS.load(Ordering::SeqCst);
        // Default action.
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Unhandled);
        // Ignored.
        on_signal(sys, SIGSEGV, 1, 0);
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Unhandled);
        // Blocked, with a handler.
        on_signal(sys, SIGSEGV, SEGV_HANDLER(), SA_SIGINFO);
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGSEGV)))
            .unwrap();
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Unhandled);
        // Nothing became pending on the way, and no handler ran.
        assert_eq!(sys.sigpending().unwrap() & sig_bit(SIGSEGV), 0);
        assert_eq!(RUNS.load(Ordering::SeqCst), runs);
        sys.rt_sigprocmask(SIG_UNBLOCK, Some(sig_bit(SIGSEGV)))
            .unwrap();
        assert_eq!(RUNS.load(Ordering::SeqCst), runs);
        // Unblocked: handled.
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Resume);
        assert_eq!(RUNS.load(Ordering::SeqCst), runs + 1);

        // SA_RESETHAND: the first fault is handled, the action is then the default.
        on_signal(sys, SIGSEGV, SEGV_HANDLER(), SA_SIGINFO | SA_RESETHAND);
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Resume);
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Unhandled);
        assert_eq!(RUNS.load(Ordering::SeqCst), runs + 2);
        take_seen();
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn a_fault_inside_the_handler_is_fatal_unless_sa_nodefer() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = world();
    let sys = w.sys;
    *SYSTEM.lock().unwrap() = Some(sys);
    let status = w.run(move || {
        enter_application_code();
        for (flags, nested) in [
            (SA_SIGINFO, FaultOutcome::Unhandled),
            (SA_SIGINFO | SA_NODEFER, FaultOutcome::Resume),
        ] {
            on_signal(sys, SIGSEGV, SEGV_HANDLER(), flags);
            // The handler faults once more (the second handler does not).
            *NESTED.lock().unwrap() = Some(0x20);
            let runs = RUNS.load(Ordering::SeqCst);
            assert_eq!(fault(sys, 0x10).0, FaultOutcome::Resume);
            let inner = NESTED_OUTCOME.lock().unwrap().take();
            assert_eq!(inner, Some(nested), "flags {flags:#x}");
            let expected_runs = if nested == FaultOutcome::Resume { 2 } else { 1 };
            assert_eq!(RUNS.load(Ordering::SeqCst), runs + expected_runs);
            take_seen();
        }
        0
    });
    assert_eq!(status, Some(0));
}
