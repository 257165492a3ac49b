//! Delivery at the timer interrupt (`uk_posix_process::interrupt`): the scheduler's exit
//! hook runs the handler of a due timer's signal for a thread caught in application code,
//! leaves a thread inside a system call (or one that never ran application code) alone
//! until its call returns, and a handler the layer runs counts as application code.
//! The interrupt itself is played by calling the hook from the thread, as the board's
//! handler does on its stack.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{FakeClock, on_signal, world};
use uk_hal::irq::{
    GENERAL_REGISTERS, InterruptedRegisters, PC_REGISTER, RegisterSlot, SP_REGISTER,
};
use uk_posix_process::System;
use uk_posix_process::interrupt::{
    IN_APPLICATION, IN_KERNEL, NOT_APPLICATION, enter_application_code, leave_application_code,
    state, syscall_entered, syscall_leaving,
};
use uk_posix_process::itimer::{ITIMER_REAL, Itimerval, Timeval};
use uk_posix_process::signal::SIGALRM;

static ALARMS: AtomicUsize = AtomicUsize::new(0);
/// The thread's state while the handler ran.
static STATE_IN_HANDLER: AtomicUsize = AtomicUsize::new(usize::MAX);

extern "C" fn on_alarm(sig: i32) {
    assert_eq!(sig, SIGALRM);
    ALARMS.fetch_add(1, Ordering::SeqCst);
    STATE_IN_HANDLER.store(state().unwrap(), Ordering::SeqCst);
}

/// Arms the caller's process's `SIGALRM` 5 ms ahead and moves the fake clock past it.
fn alarm_overdue(sys: &System, clock: &FakeClock) {
    let in_5ms = Itimerval {
        interval: Timeval::default(),
        value: Timeval {
            tv_sec: 0,
            tv_usec: 5000,
        },
    };
    sys.setitimer(ITIMER_REAL, in_5ms).unwrap();
    clock.advance(6_000_000);
}

#[test]
fn a_due_timer_interrupts_application_code_but_not_a_system_call() {
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        on_signal(sys, SIGALRM, on_alarm as *const () as usize, 0);
        // A thread that never ran application code: the interrupt leaves it alone.
        assert_eq!(state(), Some(NOT_APPLICATION));
        alarm_overdue(sys, &clock);
        sys.timer_interrupt_ended(None);
        assert_eq!(ALARMS.load(Ordering::SeqCst), 0);
        // Entering a system call changes nothing for it either.
        let outer = syscall_entered();
        assert_eq!(state(), Some(NOT_APPLICATION));
        syscall_leaving(outer);

        // Application code: the interrupt fires the due timer and runs the handler there,
        // marked as application code; the thread is back in application code afterwards.
        enter_application_code();
        sys.timer_interrupt_ended(None);
        assert_eq!(ALARMS.load(Ordering::SeqCst), 1);
        assert_eq!(STATE_IN_HANDLER.load(Ordering::SeqCst), IN_APPLICATION);
        assert_eq!(state(), Some(IN_APPLICATION));
        assert_eq!(sys.getitimer(ITIMER_REAL), Ok(Itimerval::default()));

        // Inside a system call: not there; the call's return fires it and runs the handler.
        alarm_overdue(sys, &clock);
        let outer = syscall_entered();
        assert_eq!(state(), Some(IN_KERNEL));
        sys.timer_interrupt_ended(None);
        assert_eq!(ALARMS.load(Ordering::SeqCst), 1);
        // A nested call (a handler's) restores the outer state when it leaves.
        let inner = syscall_entered();
        syscall_leaving(inner);
        assert_eq!(state(), Some(IN_KERNEL));
        sys.syscall_returned();
        assert_eq!(ALARMS.load(Ordering::SeqCst), 2);
        // The handler ran as application code, and the call's state came back after it.
        assert_eq!(STATE_IN_HANDLER.load(Ordering::SeqCst), IN_APPLICATION);
        assert_eq!(state(), Some(IN_KERNEL));
        syscall_leaving(outer);
        assert_eq!(state(), Some(IN_APPLICATION));

        // A blocked signal stays pending through the interrupt.
        let mask = uk_posix_process::signal::sig_bit(SIGALRM);
        sys.rt_sigprocmask(uk_posix_process::signal::SIG_BLOCK, Some(mask))
            .unwrap();
        alarm_overdue(sys, &clock);
        sys.timer_interrupt_ended(None);
        assert_eq!(ALARMS.load(Ordering::SeqCst), 2);
        assert_eq!(sys.sigpending().unwrap() & mask, mask);
        sys.rt_sigprocmask(uk_posix_process::signal::SIG_UNBLOCK, Some(mask))
            .unwrap();
        assert_eq!(ALARMS.load(Ordering::SeqCst), 3);

        leave_application_code();
        assert_eq!(state(), Some(IN_KERNEL));
        0
    });
    assert_eq!(status, Some(0));
}

/// The registers a `SA_SIGINFO` handler reads in its context (`uc_mcontext`'s `gregs` on
/// x86_64, `regs`, `sp`, `pc` and `pstate` on aarch64, as in Linux's `ucontext_t`), and
/// what it writes there: what the interrupted code resumes with.
static SEEN: Mutex<[u64; GENERAL_REGISTERS]> = Mutex::new([0; GENERAL_REGISTERS]);
const UC_REGISTERS_WORD: usize = if cfg!(target_arch = "aarch64") { 23 } else { 5 };
const MOVED_PC: u64 = 0x4000_1234;
/// The register numbered 0 (`r8`, `x0`), changed by the handler too.
const CHANGED_FIRST: u64 = 0x5eed;
/// The last register (x86_64 `eflags`, aarch64 `pstate`), which the fake frame reports only.
const FLAGS: usize = GENERAL_REGISTERS - 1;

extern "C" fn on_alarm_changing_registers(sig: i32, _info: *mut u8, context: *mut u64) {
    assert_eq!(sig, SIGALRM);
    // SAFETY: test only: the layer passes a live context of its full size.
    let registers = unsafe {
        std::slice::from_raw_parts_mut(context.add(UC_REGISTERS_WORD), GENERAL_REGISTERS)
    };
    SEEN.lock().unwrap().copy_from_slice(registers);
    registers[PC_REGISTER] = MOVED_PC;
    registers[0] = CHANGED_FIRST;
    registers[SP_REGISTER] = 8;
    registers[FLAGS] = 0;
}

/// A fake board's frame layout: register `n` in word `n`, the flags reported only, and the
/// stack pointer where the frame ends (word 40), as the aarch64 board reports its own.
static FAKE_LAYOUT: [RegisterSlot; GENERAL_REGISTERS] = {
    let mut layout = [RegisterSlot::Absent; GENERAL_REGISTERS];
    let mut n = 0;
    while n < GENERAL_REGISTERS {
        layout[n] = RegisterSlot::Word(n as u16);
        n += 1;
    }
    layout[SP_REGISTER] = RegisterSlot::AddressOfWord(40);
    layout[FLAGS] = RegisterSlot::ReadOnlyWord(FLAGS as u16);
    layout
};

#[test]
fn a_handler_sees_and_changes_the_interrupted_registers() {
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        let handler = on_alarm_changing_registers as *const () as usize;
        on_signal(sys, SIGALRM, handler, uk_posix_process::signal::SA_SIGINFO);
        enter_application_code();
        // The interrupt's frame, as a board would give it: word n holds 0x100 + n.
        let mut frame: [usize; 40] = std::array::from_fn(|n| 0x100 + n);
        let base = std::ptr::NonNull::from(&mut frame).cast::<usize>();
        // SAFETY: `frame` outlives every use below, and the layout names words 0..40
        // (the stack pointer's word 40 only by address).
        let registers = unsafe { InterruptedRegisters::new(base, &FAKE_LAYOUT) };
        alarm_overdue(sys, &clock);
        sys.timer_interrupt_ended(Some(registers));
        let seen = *SEEN.lock().unwrap();
        for (n, &value) in seen.iter().enumerate() {
            let want = if n == SP_REGISTER {
                base.as_ptr().wrapping_add(40) as u64
            } else {
                0x100 + n as u64
            };
            assert_eq!(value, want, "register {n} as the handler saw it");
        }
        assert_eq!(
            frame[PC_REGISTER], MOVED_PC as usize,
            "resumes where the handler said"
        );
        assert_eq!(frame[0], CHANGED_FIRST as usize);
        assert_eq!(frame[FLAGS], 0x100 + FLAGS, "reported-only registers stay");
        let untouched = (1..40).filter(|&n| n != PC_REGISTER);
        assert!(untouched.into_iter().all(|n| frame[n] == 0x100 + n));
        // A later delivery at a system call's return reports no interrupted code.
        alarm_overdue(sys, &clock);
        let outer = syscall_entered();
        sys.timer_interrupt_ended(None);
        sys.syscall_returned();
        syscall_leaving(outer);
        assert_eq!(*SEEN.lock().unwrap(), [0; GENERAL_REGISTERS]);
        leave_application_code();
        0
    });
    assert_eq!(status, Some(0));
}

/// Without a handler, a due `SIGALRM` caught at the interrupt ends the process (128 + 14),
/// as an `alarm` used as a watchdog over a loop that makes no calls expects.
#[test]
fn an_alarm_without_a_handler_ends_a_computing_process_at_the_interrupt() {
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        enter_application_code();
        alarm_overdue(sys, &clock);
        sys.timer_interrupt_ended(None);
        unreachable!("the default action of SIGALRM ends the process");
    });
    assert_eq!(status, Some(128 + SIGALRM as u8));
}
