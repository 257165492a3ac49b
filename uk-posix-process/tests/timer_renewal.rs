//! A timer interrupt that finds a thread inside a system call uses up the layer's interrupt
//! request and can only leave a note; the call's return to application code renews the
//! request, so a thread that then computes is interrupted at its timer's next deadline,
//! not at the scheduler's next tick (or never, under a cooperative scheduler). The board's
//! interrupts are a fake whose timer records where it is armed; the interrupt is played by
//! calling the handler uk-sched registered, as the board does.

mod common;

use std::sync::Mutex;

use common::{on_signal, world_on};
use uk_hal::irq::{
    CpuSet, CpuStartError, Interrupts, IpiTarget, IrqCpuInterface, IrqDistributor, IrqError,
    IrqHandler, IrqNumber, LocalTimer, Trigger,
};
use uk_posix_process::interrupt::{enter_application_code, syscall_entered, syscall_leaving};
use uk_posix_process::itimer::{ITIMER_REAL, Itimerval, Timeval};
use uk_posix_process::signal::SIGALRM;

/// Where the fake timer is armed (`None`: disarmed) and the timer's handler.
struct FakeIrqs {
    armed: Mutex<Option<u64>>,
    handler: Mutex<Option<IrqHandler>>,
}

static FAKE: FakeIrqs = FakeIrqs {
    armed: Mutex::new(None),
    handler: Mutex::new(None),
};

const TIMER_IRQ: IrqNumber = 27;

impl IrqDistributor for FakeIrqs {
    fn enable(&self, _: IrqNumber) -> Result<(), IrqError> {
        Ok(())
    }
    fn disable(&self, _: IrqNumber) -> Result<(), IrqError> {
        Ok(())
    }
    fn set_priority(&self, _: IrqNumber, _: u8) -> Result<(), IrqError> {
        Ok(())
    }
    fn set_trigger(&self, _: IrqNumber, _: Trigger) -> Result<(), IrqError> {
        Ok(())
    }
    fn route(&self, _: IrqNumber, _: CpuSet) -> Result<(), IrqError> {
        Ok(())
    }
    fn line_count(&self) -> u32 {
        64
    }
}

impl IrqCpuInterface for FakeIrqs {
    fn acknowledge(&self) -> Option<IrqNumber> {
        None
    }
    fn end_of_interrupt(&self, _: IrqNumber) {}
    fn send_ipi(&self, _: IrqNumber, _: IpiTarget) -> Result<(), IrqError> {
        Ok(())
    }
    fn cpu_id(&self) -> u32 {
        0
    }
}

impl LocalTimer for FakeIrqs {
    fn irq(&self) -> IrqNumber {
        TIMER_IRQ
    }
    fn arm_at(&self, deadline_ns: u64) {
        *self.armed.lock().unwrap() = Some(deadline_ns);
    }
    fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
    }
}

impl Interrupts for FakeIrqs {
    fn distributor(&self) -> &dyn IrqDistributor {
        self
    }
    fn cpu_interface(&self) -> &dyn IrqCpuInterface {
        self
    }
    fn timer(&self) -> &dyn LocalTimer {
        self
    }
    fn register_handler(&self, irq: IrqNumber, handler: IrqHandler) -> Result<(), IrqError> {
        if irq == TIMER_IRQ {
            *self.handler.lock().unwrap() = Some(handler);
        }
        Ok(())
    }
    fn free_ipi(&self) -> IrqNumber {
        1
    }
    fn enable_on_this_cpu(&self) {}
    fn cpu_count(&self) -> u32 {
        1
    }
    fn start_cpu(&self, cpu: u32, _: fn(u32) -> !) -> Result<(), CpuStartError> {
        Err(CpuStartError::NoSuchCpu(cpu))
    }
    fn mask(&self) -> usize {
        0
    }
    fn restore(&self, _: usize) {}
    fn wait_for_interrupt(&self) {}
}

fn armed() -> Option<u64> {
    *FAKE.armed.lock().unwrap()
}

/// The timer interrupt, as the board calls uk-sched's handler.
fn timer_interrupt() {
    let handler = FAKE
        .handler
        .lock()
        .unwrap()
        .expect("uk-sched registered its handler");
    handler(TIMER_IRQ);
}

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
        assert_eq!(armed(), Some(start + MS));
        // The interrupt comes while the thread is still inside the call: it cannot fire
        // the timer there, and its request is used up.
        clock.advance(MS);
        timer_interrupt();
        assert_eq!(armed(), None, "the interrupt used the request up");
        // Back to application code: the request is renewed, for the timer that is due.
        syscall_leaving(outer);
        assert_eq!(armed(), Some(start + MS));
        // That interrupt finds the thread computing: the timer fires, and the next
        // deadline is asked for.
        timer_interrupt();
        assert_eq!(armed(), Some(start + 2 * MS));
        // A call that no interrupt disturbed leaves the request as it is.
        let outer = syscall_entered();
        syscall_leaving(outer);
        assert_eq!(armed(), Some(start + 2 * MS));
        sys.setitimer(ITIMER_REAL, Itimerval::default()).unwrap();
        0
    });
    assert_eq!(status, Some(0));
}
