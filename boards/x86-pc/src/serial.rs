//! A transmit-only 16550 UART driver over port I/O (COM1 at 0x3F8 on every PC and on
//! QEMU `pc` and `microvm`).
//!
//! The driver is written for the board rather than taken from the `uart_16550` crate:
//!
//! - it is lock-free and works through `&self` from any context (an exception handler, a
//!   panic, a test restarted on a fresh stack), because the device state it needs is in the
//!   UART itself; `uart_16550` needs `&mut self`, so a shared console would need a lock
//!   that a fault inside the console could leave held forever;
//! - it fills the 16-byte transmit FIFO after each "transmitter holding register empty"
//!   check, one status read per 16 bytes instead of one per byte: under QEMU TCG every port
//!   access is an exit to the device model, so this halves the cost of console output;
//! - it leaves UART interrupts disabled (`uart_16550` 0.3 enables the receive interrupt);
//! - it brings no dependencies (0.3 pulls in the `x86` crate for `inb`/`outb`, 0.9 needs
//!   Rust 1.91, above the workspace's `rust-version`).
//!
//! The line is set to 115200 baud, 8N1, FIFOs on; QEMU ignores the rate.

/// Port I/O as the driver needs it; `arch` implements it with `in`/`out`, tests with a fake.
pub trait PortIo {
    /// Reads a byte from `port`.
    fn inb(&self, port: u16) -> u8;
    /// Writes `value` to `port`.
    fn outb(&self, port: u16, value: u8);
}

/// Base port of COM1.
pub const COM1: u16 = 0x3f8;

/// Bytes the transmit FIFO of a 16550A holds.
pub const FIFO_SIZE: usize = 16;

// Register offsets from the base port.
const THR: u16 = 0; // transmit holding register (DLAB=0) / divisor latch low (DLAB=1)
const IER: u16 = 1; // interrupt enable (DLAB=0) / divisor latch high (DLAB=1)
const FCR: u16 = 2; // FIFO control
const LCR: u16 = 3; // line control
const MCR: u16 = 4; // modem control
const LSR: u16 = 5; // line status

const LCR_DLAB: u8 = 0x80;
const LCR_8N1: u8 = 0x03;
const FCR_ENABLE_AND_CLEAR: u8 = 0x07;
const MCR_DTR_RTS: u8 = 0x03;
const LSR_THR_EMPTY: u8 = 0x20;
/// Divisor of the 1.8432 MHz / 16 base rate for 115200 baud.
const DIVISOR_115200: u16 = 1;

/// A 16550 at a base port, accessed through `io`.
pub struct Uart16550<P: PortIo> {
    io: P,
    base: u16,
}

impl<P: PortIo> Uart16550<P> {
    /// The UART at `base`, not yet initialised.
    pub const fn new(io: P, base: u16) -> Self {
        Uart16550 { io, base }
    }

    /// Programs 115200 8N1 with FIFOs and all UART interrupts off.
    pub fn init(&self) {
        let [low, high] = DIVISOR_115200.to_le_bytes();
        self.io.outb(self.base + IER, 0);
        self.io.outb(self.base + LCR, LCR_DLAB);
        self.io.outb(self.base + THR, low);
        self.io.outb(self.base + IER, high);
        self.io.outb(self.base + LCR, LCR_8N1);
        self.io.outb(self.base + FCR, FCR_ENABLE_AND_CLEAR);
        self.io.outb(self.base + MCR, MCR_DTR_RTS);
    }

    /// Sends every byte of `bytes`, waiting for room in the FIFO as needed.
    ///
    /// A missing UART reads as 0xff (THR empty forever), so this never hangs on a machine
    /// without COM1.
    pub fn write(&self, bytes: &[u8]) {
        for chunk in bytes.chunks(FIFO_SIZE) {
            while self.io.inb(self.base + LSR) & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
            for &byte in chunk {
                self.io.outb(self.base + THR, byte);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::cell::RefCell;
    use std::vec::Vec;

    use super::*;

    #[derive(Default)]
    struct FakeIo {
        log: RefCell<Vec<(char, u16, u8)>>,
        busy_reads: RefCell<usize>,
    }

    impl PortIo for &FakeIo {
        fn inb(&self, port: u16) -> u8 {
            self.log.borrow_mut().push(('r', port, 0));
            let mut busy = self.busy_reads.borrow_mut();
            if *busy > 0 {
                *busy -= 1;
                0
            } else {
                LSR_THR_EMPTY
            }
        }
        fn outb(&self, port: u16, value: u8) {
            self.log.borrow_mut().push(('w', port, value));
        }
    }

    #[test]
    fn init_sequence() {
        let io = FakeIo::default();
        Uart16550::new(&io, COM1).init();
        assert_eq!(
            *io.log.borrow(),
            [
                ('w', 0x3f9, 0),
                ('w', 0x3fb, 0x80),
                ('w', 0x3f8, 1),
                ('w', 0x3f9, 0),
                ('w', 0x3fb, 0x03),
                ('w', 0x3fa, 0x07),
                ('w', 0x3fc, 0x03),
            ]
        );
    }

    #[test]
    fn one_status_read_per_fifo_load() {
        let io = FakeIo::default();
        let text: Vec<u8> = (0..40).collect();
        Uart16550::new(&io, COM1).write(&text);
        let log = io.log.borrow();
        let reads = log.iter().filter(|e| e.0 == 'r').count();
        assert_eq!(reads, 3, "40 bytes = 3 FIFO loads");
        let sent: Vec<u8> = log.iter().filter(|e| e.0 == 'w').map(|e| e.2).collect();
        assert_eq!(sent, text);
        assert!(log.iter().filter(|e| e.0 == 'w').all(|e| e.1 == 0x3f8));
        // Never more than a FIFO's worth between two status reads.
        let mut run = 0;
        for entry in log.iter() {
            run = if entry.0 == 'r' { 0 } else { run + 1 };
            assert!(run <= FIFO_SIZE);
        }
    }

    #[test]
    fn waits_while_the_fifo_is_busy() {
        let io = FakeIo::default();
        *io.busy_reads.borrow_mut() = 5;
        Uart16550::new(&io, COM1).write(b"hi");
        let log = io.log.borrow();
        assert_eq!(log.iter().filter(|e| e.0 == 'r').count(), 6);
        assert_eq!(log.last(), Some(&('w', 0x3f8, b'i')));
        Uart16550::new(&io, COM1).write(b"");
    }
}
