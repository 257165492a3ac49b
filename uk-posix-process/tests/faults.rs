//! CPU faults become signals (`uk_posix_process::fault`): the layer's fault hook runs the
//! handler of a thread in application code with the signal Linux sends for the fault,
//! `si_addr`, the right `si_code` and the faulting registers, and resumes where the handler
//! says; a blocked, ignored or default signal ends the process (killed by that signal, as
//! its parent's `wait` sees), and so does a second fault inside the handler; a fault in a
//! system call is left to the board. The fault is played by calling the hook from the
//! thread, as a board does on the faulting thread's stack.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{child_process, on_signal, world};
use uk_hal::fault::{Fault, FaultAccess, FaultOutcome, MemoryFault};
use uk_hal::irq::{GENERAL_REGISTERS, InterruptedRegisters, PC_REGISTER, RegisterSlot};
use uk_posix_process::interrupt::{
    IN_APPLICATION, enter_application_code, state, syscall_entered, syscall_leaving,
};
use uk_posix_process::signal::{
    BUS_ADRALN, FPE_INTDIV, ILL_ILLOPC, SA_NODEFER, SA_RESETHAND, SA_SIGINFO, SEGV_ACCERR,
    SEGV_MAPERR, SI_KERNEL, SIG_BLOCK, SIGBUS, SIGCHLD, SIGFPE, SIGILL, SIGSEGV, SIGTRAP, SigInfo,
    TRAP_BRKPT, sig_bit,
};
use uk_posix_process::wait::ExitKind;
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
        blocked: mask & sig_bit(sig) != 0,
    });
    registers[PC_REGISTER] = MOVED_PC;
    // A fault inside the handler, where the test asks for one: what the layer answered.
    let nested = NESTED.lock().unwrap().take();
    if let Some(addr) = nested {
        let mut frame = fake_frame();
        let outcome = sys.cpu_fault(&read_at(addr), &registers_of(&mut frame));
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

fn read_at(addr: usize) -> Fault {
    Fault::Memory(MemoryFault {
        addr,
        access: FaultAccess::Read,
    })
}

/// Offers a read fault at `addr` with a fresh fake frame; the outcome and the frame after.
fn fault(sys: &System, addr: usize) -> (FaultOutcome, [usize; GENERAL_REGISTERS]) {
    offer(sys, &read_at(addr))
}

/// Offers `fault` with a fresh fake frame; the outcome and the frame after.
fn offer(sys: &System, fault: &Fault) -> (FaultOutcome, [usize; GENERAL_REGISTERS]) {
    let mut frame = fake_frame();
    let outcome = sys.cpu_fault(fault, &registers_of(&mut frame));
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
fn each_kind_of_fault_is_the_signal_linux_sends() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = world();
    let sys = w.sys;
    *SYSTEM.lock().unwrap() = Some(sys);
    // x86's int3 is a plain SIGTRAP from the kernel; arm64's BRK a breakpoint at its address.
    let breakpoint = if cfg!(target_arch = "x86_64") {
        (SIGTRAP, SI_KERNEL, 0)
    } else {
        (SIGTRAP, TRAP_BRKPT, 0x4000_1004)
    };
    let cases = [
        (
            Fault::Misaligned {
                addr: 0x4000_2004,
                access: FaultAccess::Write,
            },
            (SIGBUS, BUS_ADRALN, 0x4000_2004),
        ),
        (
            Fault::IllegalInstruction { addr: 0x4000_1000 },
            (SIGILL, ILL_ILLOPC, 0x4000_1000),
        ),
        (
            Fault::DivideError { addr: 0x4000_1008 },
            (SIGFPE, FPE_INTDIV, 0x4000_1008),
        ),
        (
            Fault::GeneralProtection { addr: 0x4000_100c },
            (SIGSEGV, SI_KERNEL, 0),
        ),
        (Fault::Breakpoint { addr: 0x4000_1004 }, breakpoint),
    ];
    let status = w.run(move || {
        enter_application_code();
        for (fault, (sig, code, addr)) in cases {
            on_signal(sys, sig, SEGV_HANDLER(), SA_SIGINFO);
            let (outcome, frame) = offer(sys, &fault);
            assert_eq!(outcome, FaultOutcome::Resume, "{fault:?}");
            let seen = take_seen().expect("the handler ran");
            assert_eq!(
                seen,
                Seen {
                    sig,
                    code,
                    addr,
                    pc: 0x700 + PC_REGISTER as u64,
                    state: IN_APPLICATION,
                    blocked: true,
                },
                "{fault:?}"
            );
            assert_eq!(frame[PC_REGISTER], MOVED_PC as usize, "{fault:?}");
            assert_eq!(
                sys.rt_sigprocmask(SIG_BLOCK, None).unwrap() & sig_bit(sig),
                0,
                "unblocked after the handler"
            );
        }
        0
    });
    assert_eq!(status, Some(0));
}

/// Runs `body` (which faults) in a child process and returns how the child ended.
fn child_ending(sys: &'static System, body: impl FnOnce() + 'static) -> ExitKind {
    let pid = child_process(sys, SIGCHLD as u64, move || {
        enter_application_code();
        body();
        0
    });
    let reaped = sys.wait4(pid as i32, 0).unwrap().unwrap();
    assert_eq!(reaped.pid, pid);
    reaped.how
}

#[test]
fn a_blocked_ignored_or_default_signal_ends_the_process() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = world();
    let sys = w.sys;
    *SYSTEM.lock().unwrap() = Some(sys);
    let status = w.run(move || {
        let runs = RUNS.load(Ordering::SeqCst);
        // Default action: killed by the fault's signal, as the parent's wait sees.
        let how = child_ending(sys, move || {
            fault(sys, 0x10);
            unreachable!("the default action of SIGSEGV ends the process");
        });
        assert_eq!(how, ExitKind::Killed(SIGSEGV));
        assert_eq!(how.wait_status(), SIGSEGV, "WIFSIGNALED, WTERMSIG");
        let how = child_ending(sys, move || {
            offer(sys, &Fault::IllegalInstruction { addr: 0x4000_1000 });
            unreachable!("the default action of SIGILL ends the process");
        });
        assert_eq!(how, ExitKind::Killed(SIGILL));
        // Ignored: ends the process all the same (Linux resets the action to the default).
        let how = child_ending(sys, move || {
            on_signal(sys, SIGFPE, 1, 0);
            offer(sys, &Fault::DivideError { addr: 0x4000_1000 });
            unreachable!("an ignored SIGFPE from a fault ends the process");
        });
        assert_eq!(how, ExitKind::Killed(SIGFPE));
        // Blocked, with a handler: killed, the handler never runs, nothing left pending.
        let how = child_ending(sys, move || {
            on_signal(sys, SIGBUS, SEGV_HANDLER(), SA_SIGINFO);
            sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGBUS)))
                .unwrap();
            offer(
                sys,
                &Fault::Misaligned {
                    addr: 0x4000_2004,
                    access: FaultAccess::Read,
                },
            );
            unreachable!("a blocked SIGBUS from a fault ends the process");
        });
        assert_eq!(how, ExitKind::Killed(SIGBUS));
        assert_eq!(RUNS.load(Ordering::SeqCst), runs);

        // Unblocked: handled, and the process goes on.
        enter_application_code();
        on_signal(sys, SIGSEGV, SEGV_HANDLER(), SA_SIGINFO);
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Resume);
        assert_eq!(RUNS.load(Ordering::SeqCst), runs + 1);
        take_seen();

        // SA_RESETHAND: the first fault is handled, the next one ends the process.
        on_signal(sys, SIGSEGV, SEGV_HANDLER(), SA_SIGINFO | SA_RESETHAND);
        assert_eq!(fault(sys, 0x10).0, FaultOutcome::Resume);
        assert_eq!(RUNS.load(Ordering::SeqCst), runs + 2);
        take_seen();
        fault(sys, 0x10);
        unreachable!("the action was reset to the default");
    });
    // The first process, killed: the run's status is 128 + the signal.
    assert_eq!(status, Some(128 + SIGSEGV as u8));
}

#[test]
fn a_fault_inside_the_handler_ends_the_process_unless_sa_nodefer() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = world();
    let sys = w.sys;
    *SYSTEM.lock().unwrap() = Some(sys);
    let status = w.run(move || {
        // SA_NODEFER: the handler's own fault runs the handler once more.
        let how = child_ending(sys, move || {
            on_signal(sys, SIGSEGV, SEGV_HANDLER(), SA_SIGINFO | SA_NODEFER);
            *NESTED.lock().unwrap() = Some(0x20);
            let runs = RUNS.load(Ordering::SeqCst);
            assert_eq!(fault(sys, 0x10).0, FaultOutcome::Resume);
            assert_eq!(
                NESTED_OUTCOME.lock().unwrap().take(),
                Some(FaultOutcome::Resume)
            );
            assert_eq!(RUNS.load(Ordering::SeqCst), runs + 2);
            take_seen();
        });
        assert_eq!(how, ExitKind::Exited(0));
        // Without it, SIGSEGV is blocked while the handler runs: its fault is fatal.
        let runs = RUNS.load(Ordering::SeqCst);
        let how = child_ending(sys, move || {
            on_signal(sys, SIGSEGV, SEGV_HANDLER(), SA_SIGINFO);
            *NESTED.lock().unwrap() = Some(0x20);
            fault(sys, 0x10);
            unreachable!("the fault inside the handler ends the process");
        });
        assert_eq!(how, ExitKind::Killed(SIGSEGV));
        assert_eq!(RUNS.load(Ordering::SeqCst), runs + 1);
        assert_eq!(NESTED_OUTCOME.lock().unwrap().take(), None);
        take_seen();
        0
    });
    assert_eq!(status, Some(0));
}
