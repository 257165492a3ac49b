//! The interrupt loop a board's IRQ entry runs, apart from the assembly so it is tested on
//! the host: acknowledge, end, dispatch, until the CPU interface reports nothing pending.

use uk_hal::irq::{HandlerTable, IrqCpuInterface, IrqNumber};

/// Takes every pending interrupt of the calling CPU: acknowledges it, ends it, then runs
/// its handler from `handlers` (or `unhandled` when it has none), until the CPU interface
/// reports spurious (1023, which is never ended). Returns how many interrupts were taken.
///
/// Ending before dispatching lets a handler switch threads (a scheduler's tick preempting
/// from the timer handler) without leaving the CPU interface's running priority raised
/// while the interrupted thread waits; interrupts stay masked on the CPU throughout, so
/// nothing nests. A level-triggered line still asserted after its handler simply becomes
/// pending again and is taken on the next round (or reads as spurious once deasserted).
pub fn handle_pending<const N: usize>(
    cpu: &dyn IrqCpuInterface,
    handlers: &HandlerTable<N>,
    mut unhandled: impl FnMut(IrqNumber),
) -> u32 {
    let mut taken = 0;
    while let Some(irq) = cpu.acknowledge() {
        cpu.end_of_interrupt(irq);
        if !handlers.dispatch(irq) {
            unhandled(irq);
        }
        taken += 1;
    }
    taken
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::sync::Mutex;
    use std::vec::Vec;

    use uk_hal::irq::{IpiTarget, IrqError};

    use super::*;

    /// A CPU interface with a queue of pending INTIDs and a log of events.
    struct Queue {
        pending: Mutex<Vec<u32>>,
    }

    static EVENTS: Mutex<Vec<(&str, u32)>> = Mutex::new(Vec::new());

    impl IrqCpuInterface for Queue {
        fn acknowledge(&self) -> Option<IrqNumber> {
            let next = self.pending.lock().unwrap().pop();
            let irq = next.unwrap_or(crate::SPURIOUS);
            EVENTS.lock().unwrap().push(("ack", irq));
            (irq < crate::SPURIOUS_FIRST).then_some(irq)
        }
        fn end_of_interrupt(&self, irq: IrqNumber) {
            EVENTS.lock().unwrap().push(("eoi", irq));
        }
        fn send_ipi(&self, _: IrqNumber, _: IpiTarget) -> Result<(), IrqError> {
            Ok(())
        }
        fn cpu_id(&self) -> u32 {
            0
        }
    }

    fn handler(irq: IrqNumber) {
        EVENTS.lock().unwrap().push(("handler", irq));
    }

    #[test]
    fn acknowledge_end_dispatch_until_spurious() {
        let table = HandlerTable::<64>::new();
        table.register(27, handler).unwrap();
        // Taken in the order 27, 5 (pop from the back).
        let cpu = Queue {
            pending: Mutex::new(std::vec![5, 27]),
        };
        let mut missing = Vec::new();
        let taken = handle_pending(&cpu, &table, |irq| missing.push(irq));
        assert_eq!(taken, 2);
        assert_eq!(missing, [5]);
        assert_eq!(
            *EVENTS.lock().unwrap(),
            [
                ("ack", 27),
                ("eoi", 27),
                ("handler", 27),
                ("ack", 5),
                ("eoi", 5),
                ("ack", crate::SPURIOUS),
            ]
        );
    }
}
