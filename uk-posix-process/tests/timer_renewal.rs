//! A timer interrupt that finds a thread inside a system call uses up the layer's interrupt
//! request and can only leave a note; the call's return to application code renews the
//! request, so a thread that then computes is interrupted at its timer's next deadline,
//! not at the scheduler's next tick (or never, under a cooperative scheduler). The board's
//! interrupts are uk-sched's fake ([`uk_sched::testing::FakeInterrupts`]), whose timer
//! records where it is armed; the interrupt is played by calling the handler uk-sched
//! registered, as the board does.

mod common;

use common::{on_signal, world_on};
use uk_posix_process::interrupt::{enter_application_code, syscall_entered, syscall_leaving};
use uk_posix_process::itimer::{ITIMER_REAL, Itimerval, Timeval};
use uk_posix_process::signal::SIGALRM;
use uk_sched::testing::FakeInterrupts;

/// The board's interrupts: a fake whose timer records where it is armed.
static FAKE: FakeInterrupts = FakeInterrupts::new();

extern "C" fn on_alarm(_sig: i32) {}

const MS: u64 = 1_000_000;

#[test]
fn the_return_to_application_code_renews_a_request_an_interrupt_used_up() {
    uk_sched::irq::install(&FAKE).unwrap();
    uk_sched::irq::set_timer_exit_hook(|registers| {
        uk_posix_process::system().timer_interrupt_ended(registers)
    });
    let sys = uk_posix_process::system();
    let w = world_on(sys);
    let clock = w.clock.clone();
    let status = w.run(move || {
        on_signal(sys, SIGALRM, on_alarm as *const () as usize, 0);
        enter_application_code();
        let every_ms = Timeval {
            tv_sec: 0,
            tv_usec: 1000,
        };
        let start = clock.0.load(std::sync::atomic::Ordering::SeqCst);
        // A system call arms a 1 ms interval timer: the layer asks for an interrupt then.
        let outer = syscall_entered();
        sys.setitimer(
            ITIMER_REAL,
            Itimerval {
                interval: every_ms,
                value: every_ms,
            },
        )
        .unwrap();
        assert_eq!(FAKE.armed(), Some(start + MS));
        // The interrupt comes while the thread is still inside the call: it cannot fire
        // the timer there, and its request is used up.
        clock.advance(MS);
        FAKE.fire_timer();
        assert_eq!(FAKE.armed(), None, "the interrupt used the request up");
        // Back to application code: the request is renewed, for the timer that is due.
        syscall_leaving(outer);
        assert_eq!(FAKE.armed(), Some(start + MS));
        // That interrupt finds the thread computing: the timer fires, and the next
        // deadline is asked for.
        FAKE.fire_timer();
        assert_eq!(FAKE.armed(), Some(start + 2 * MS));
        // A call that no interrupt disturbed leaves the request as it is.
        let outer = syscall_entered();
        syscall_leaving(outer);
        assert_eq!(FAKE.armed(), Some(start + 2 * MS));
        sys.setitimer(ITIMER_REAL, Itimerval::default()).unwrap();
        0
    });
    assert_eq!(status, Some(0));
}
