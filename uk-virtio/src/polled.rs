//! One virtqueue driven by polling, with a deadline: what every driver of this crate shares.

use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use uk_hal::Platform;
use virtio_drivers::device::common::Feature;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{
    DeviceStatus, DeviceType, SomeTransport, Transport as VirtioTransport,
};

use crate::UkHal;
use crate::device::{Claim, DeviceInfo, Error, Location, open_claimed};

/// How long a request waits for its device unless [`set_default_timeout`] or the device's
/// own `set_timeout` says otherwise: 10 seconds.
///
/// QEMU answers a 9P message in well under a millisecond and an entropy request at once;
/// ten seconds leaves room for a host file system that is slow to `fsync` a large file
/// under load, and still ends a wait for a device that has stopped answering.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much time one turn of a wait counts for when no clock is registered
/// ([`uk_hal::system_clock`] is `None`): 100 nanoseconds.
///
/// Without a clock a request counts the turns of its wait loop (each a look at the queue
/// and a [`uk_hal::relax`]) and gives up after `timeout / 100 ns` of them. That is a bound,
/// not a measurement: a turn that spins is about that long on the boards under TCG, so the
/// wait lasts roughly the timeout; a turn that yields to other threads lasts longer, and so
/// does the wait.
pub const NS_PER_TURN_WITHOUT_CLOCK: u64 = 100;

/// The image-wide default timeout, in nanoseconds ([`set_default_timeout`]).
static DEFAULT_TIMEOUT_NS: AtomicU64 = AtomicU64::new(nanos(DEFAULT_TIMEOUT));

/// `d` in whole nanoseconds, saturated at `u64::MAX` (584 years).
const fn nanos(d: Duration) -> u64 {
    let ns = d.as_nanos();
    if ns > u64::MAX as u128 {
        u64::MAX
    } else {
        ns as u64
    }
}

/// Sets how long requests to devices of this crate wait for an answer, for every device
/// whose own timeout was not set (`Virtio9pTransport::set_timeout`,
/// `VirtioRng::set_timeout`); it applies from their next request on. [`DEFAULT_TIMEOUT`]
/// until called. `Duration::MAX` waits as good as forever.
///
/// A device that does not answer in time is reset and out of use: see
/// [`Error::Timeout`].
pub fn set_default_timeout(timeout: Duration) {
    DEFAULT_TIMEOUT_NS.store(nanos(timeout), Ordering::Relaxed);
}

/// The timeout of devices whose own was not set ([`set_default_timeout`]).
pub fn default_timeout() -> Duration {
    Duration::from_nanos(DEFAULT_TIMEOUT_NS.load(Ordering::Relaxed))
}

/// A device's own timeout, or the image-wide default while none was set. Shared (`&self`)
/// so that a device behind a `'static` reference can be given one.
#[derive(Debug)]
pub(crate) struct Timeout(AtomicU64);

impl Timeout {
    /// Stored while the device follows [`default_timeout`].
    const DEFAULT: u64 = u64::MAX;

    /// Following the default.
    pub(crate) const fn new() -> Self {
        Timeout(AtomicU64::new(Self::DEFAULT))
    }

    /// The timeout in force.
    pub(crate) fn get(&self) -> Duration {
        match self.0.load(Ordering::Relaxed) {
            Self::DEFAULT => default_timeout(),
            ns => Duration::from_nanos(ns),
        }
    }

    /// Sets the device's own; one nanosecond short of 584 years at most (as good as
    /// forever).
    pub(crate) fn set(&self, timeout: Duration) {
        self.0
            .store(nanos(timeout).min(Self::DEFAULT - 1), Ordering::Relaxed);
    }
}

/// When a wait gives up: a point on the board clock, or, with no clock registered, a number
/// of turns ([`NS_PER_TURN_WITHOUT_CLOCK`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// The clock reading (nanoseconds) from which the wait is over.
    At(u64),
    /// Turns still allowed.
    Turns(u64),
}

impl Deadline {
    /// The deadline `timeout` from now; `now` is the clock's reading, `None` without a clock.
    pub(crate) fn after(timeout: Duration, now: Option<u64>) -> Self {
        let ns = nanos(timeout);
        match now {
            Some(now) => Deadline::At(now.saturating_add(ns)),
            None => Deadline::Turns(ns / NS_PER_TURN_WITHOUT_CLOCK),
        }
    }

    /// Whether the wait is over, at clock reading `now`; without a clock, uses up a turn.
    /// A clock deadline that finds no clock any more is over (it does not happen: a
    /// registered clock stays).
    pub(crate) fn passed(&mut self, now: Option<u64>) -> bool {
        match self {
            Deadline::At(at) => now.is_none_or(|now| now >= *at),
            Deadline::Turns(0) => true,
            Deadline::Turns(left) => {
                *left -= 1;
                false
            }
        }
    }
}

/// Where a wait gets the time and how it lets the CPU go: the image's ([`System`]), or a
/// host test's fake clock and fake device.
pub(crate) trait WaitEnv {
    /// The clock's reading in nanoseconds, `None` without a clock.
    fn now_ns(&self) -> Option<u64>;
    /// One turn of waiting.
    fn relax(&mut self);
}

/// The image's: [`uk_hal::system_clock`] and [`uk_hal::relax`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct System;

impl WaitEnv for System {
    fn now_ns(&self) -> Option<u64> {
        uk_hal::system_clock().map(|clock| clock.monotonic_ns())
    }

    fn relax(&mut self) {
        uk_hal::relax();
    }
}

/// Looks at `done` until it holds (`true`) or `deadline` passes (`false`), relaxing between
/// looks. `done` is always asked once more before the deadline is: an answer that came while
/// the caller did not run (another thread held the CPU past the deadline) is taken.
fn wait_until(
    env: &mut impl WaitEnv,
    mut deadline: Deadline,
    mut done: impl FnMut() -> bool,
    mut on_turn: impl FnMut(),
) -> bool {
    loop {
        if done() {
            return true;
        }
        if deadline.passed(env.now_ns()) {
            return false;
        }
        on_turn();
        env.relax();
    }
}

/// Whether a device is in use, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Requests go to the device.
    Working,
    /// The device failed with this error and was reset; every request fails with it.
    Failed(Error),
    /// As `Failed`, but the device never read back the reset: it may still use the queue's
    /// memory, which is therefore never freed (nor the device handed out again).
    Stuck(Error),
}

/// A device brought up with one virtqueue (index 0) of `SIZE` descriptors, whose requests
/// wait for the device, up to a deadline, by calling [`uk_hal::relax`] in a loop.
///
/// virtio-drivers' own drivers spin in their requests, holding the CPU for the whole round
/// trip, and without an end; inside a uk-sched thread a relax is a yield, so the other
/// threads run while QEMU's I/O thread answers. That is why this crate drives its queues
/// itself.
///
/// Generic over the transport so that host tests drive it with a fake device.
pub(crate) struct PolledQueue<const SIZE: usize, T: VirtioTransport = SomeTransport<'static>> {
    // Dropped by hand (see `Drop`): the transport first, which resets the device, before
    // the queue's memory is freed and before the claim is released; none of them when the
    // device never confirmed a reset.
    transport: ManuallyDrop<T>,
    queue: ManuallyDrop<VirtQueue<UkHal, SIZE>>,
    claim: ManuallyDrop<Claim>,
    location: Location,
    state: State,
}

/// The one queue the drivers here use.
const QUEUE: u16 = 0;

impl<const SIZE: usize> PolledQueue<SIZE> {
    /// Opens `device`, which must be of type `kind`, negotiates indirect descriptors and
    /// event indices when offered, and sets up queue 0.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if `device` is of another type, else what [`crate::open`] and
    /// the queue set-up ([`Error::Device`]) report.
    pub(crate) fn open(
        platform: &dyn Platform,
        device: &DeviceInfo,
        kind: DeviceType,
    ) -> Result<Self, Error> {
        if device.device_type != kind {
            return Err(Error::NotFound);
        }
        let (transport, claim) = open_claimed(platform, device)?;
        Self::new(transport, device.location, claim)
    }
}

impl<const SIZE: usize, T: VirtioTransport> PolledQueue<SIZE, T> {
    /// Brings up the device behind `transport` (claimed by `claim`, at `location`) with
    /// queue 0.
    ///
    /// # Errors
    ///
    /// [`Error::Device`] when the queue cannot be set up; the device is then reset (the
    /// transport dropped) and the claim released.
    pub(crate) fn new(mut transport: T, location: Location, claim: Claim) -> Result<Self, Error> {
        let features = transport
            .begin_init(Feature::RING_INDIRECT_DESC | Feature::RING_EVENT_IDX | Feature::VERSION_1);
        let queue = VirtQueue::new(
            &mut transport,
            QUEUE,
            features.contains(Feature::RING_INDIRECT_DESC),
            features.contains(Feature::RING_EVENT_IDX),
        )
        .map_err(|e| Error::Device(location, e))?;
        transport.finish_init();
        Ok(Self {
            transport: ManuallyDrop::new(transport),
            queue: ManuallyDrop::new(queue),
            claim: ManuallyDrop::new(claim),
            location,
            state: State::Working,
        })
    }

    /// The device's transport (for its configuration space).
    pub(crate) fn transport(&self) -> &T {
        &self.transport
    }

    /// Where the device is.
    pub(crate) fn location(&self) -> Location {
        self.location
    }

    /// Whether the device is out of use: reset after a timeout or a broken answer, every
    /// request failing at once with that error.
    #[cfg(test)]
    pub(crate) fn is_out_of_use(&self) -> bool {
        self.state != State::Working
    }

    /// Puts `inputs` (read by the device) and `outputs` (written by it) on the queue as one
    /// chain, waits (relaxing) until the device has used them, and returns the length the
    /// device wrote. Waits at most `timeout` ([`Deadline`]).
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when the device has not used the buffers by the deadline. The
    ///   device is then reset, so that it stops using them, before this returns (they are
    ///   the caller's again), and every later request fails at once with the same error.
    /// - [`Error::Device`] when the queue refuses the buffers (none, too many; the device
    ///   is not involved and stays in use), or when the device's used ring names another
    ///   chain than this one (a broken device): that device is reset as for a timeout, and
    ///   every later request fails with the same error.
    pub(crate) fn exchange<'a>(
        &mut self,
        inputs: &'a [&'a [u8]],
        outputs: &'a mut [&'a mut [u8]],
        timeout: Duration,
    ) -> Result<u32, Error> {
        self.exchange_in(&mut System, inputs, outputs, timeout)
    }

    /// [`PolledQueue::exchange`], waiting in `env`.
    pub(crate) fn exchange_in<'a>(
        &mut self,
        env: &mut impl WaitEnv,
        inputs: &'a [&'a [u8]],
        outputs: &'a mut [&'a mut [u8]],
        timeout: Duration,
    ) -> Result<u32, Error> {
        // Every error is logged where it arises, here, once: a device out of use fails
        // each later request quietly with the error that put it out of use.
        if let State::Failed(e) | State::Stuck(e) = &self.state {
            return Err(e.clone());
        }
        // SAFETY: the buffers stay borrowed by `inputs`/`outputs`, untouched, until
        // `pop_used` below returns with this token, or until the device has been reset
        // (`fail`): a device that reads back status 0 has stopped using its queues (virtio
        // 1.2, 2.1.2). Nothing else is in flight on the queue (`&mut self`, and a failed
        // queue is never used again). One case is beyond any driver that must not wait
        // forever: a device that does not read back its reset within a second timeout is
        // taken for dead (`State::Stuck`, logged as an error) and the buffers go back to
        // the caller all the same; its queue memory, which the driver owns, is never freed.
        let token = unsafe { self.queue.add(inputs, outputs) }.map_err(|e| {
            log::warn!(
                "uk-virtio: {}: the queue refused a request ({e})",
                self.location
            );
            Error::Device(self.location, e)
        })?;
        if self.queue.should_notify() {
            self.transport.notify(QUEUE);
        }
        let deadline = Deadline::after(timeout, env.now_ns());
        let queue = &*self.queue;
        let answered = wait_until(
            env,
            deadline,
            || queue.can_pop(),
            || {
                WAIT_TURNS.fetch_add(1, Ordering::Relaxed);
            },
        );
        if !answered {
            log::warn!(
                "uk-virtio: {}: no answer within {timeout:?}; resetting the device",
                self.location
            );
            return Err(self.fail(env, timeout, Error::Timeout(self.location)));
        }
        // SAFETY: the same buffers as given to `add` with this token, still valid.
        match unsafe { self.queue.pop_used(token, inputs, outputs) } {
            Ok(len) => Ok(len),
            Err(e) => {
                log::warn!(
                    "uk-virtio: {}: the device returned a broken answer ({e}); resetting it",
                    self.location
                );
                Err(self.fail(env, timeout, Error::Device(self.location, e)))
            }
        }
    }

    /// Resets the device (status 0) so that it lets go of the buffers in flight, waits up to
    /// `timeout` for it to read back the reset, and puts the queue out of use with `error`,
    /// which it returns.
    fn fail(&mut self, env: &mut impl WaitEnv, timeout: Duration, error: Error) -> Error {
        self.transport.set_status(DeviceStatus::empty());
        let transport = &*self.transport;
        let confirmed = wait_until(
            env,
            Deadline::after(timeout, env.now_ns()),
            || transport.get_status() == DeviceStatus::empty(),
            || {},
        );
        self.state = if confirmed {
            State::Failed(error.clone())
        } else {
            log::error!(
                "uk-virtio: {}: the device did not read back its reset; it and its queue \
                 memory stay out of use for the rest of the run",
                self.location
            );
            State::Stuck(error.clone())
        };
        error
    }
}

impl<const SIZE: usize, T: VirtioTransport> Drop for PolledQueue<SIZE, T> {
    fn drop(&mut self) {
        if let State::Stuck(_) = self.state {
            // A device that did not take its reset may still write the queue's memory, and
            // dropping a PCI transport would wait for the reset forever: leave all three.
            return;
        }
        // SAFETY: each field is dropped once, here, and `self` is not used again. The
        // transport goes first: its drop resets the device, so the device no longer uses the
        // queue's memory when that is freed.
        unsafe {
            ManuallyDrop::drop(&mut self.transport);
            ManuallyDrop::drop(&mut self.queue);
            ManuallyDrop::drop(&mut self.claim);
        }
    }
}

/// Turns of the wait loop of every polled request so far ([`wait_turns`]).
static WAIT_TURNS: AtomicUsize = AtomicUsize::new(0);

/// How many times, so far, a request to a device of this crate (9p, entropy) found its
/// answer not there yet and relaxed ([`uk_hal::relax`]) before looking again; 0 if QEMU
/// always answered before the guest looked. A diagnostic, and what tells a test whether
/// there was a wait to share.
pub fn wait_turns() -> usize {
    WAIT_TURNS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Device, FakeEnv, FakeTransport, Shared, claimed};

    const MS: u64 = 1_000_000;

    /// An entropy device with a queue of 4, brought up at fake place `n`.
    fn rng_queue(n: u64) -> (Shared, PolledQueue<4, FakeTransport>, Location) {
        let device = Device::new(DeviceType::EntropySource, &[]);
        let (location, claim) = claimed(n);
        let queue = PolledQueue::new(FakeTransport(device.clone()), location, claim).unwrap();
        assert!(
            device
                .lock()
                .unwrap()
                .status
                .contains(DeviceStatus::DRIVER_OK)
        );
        (device, queue, location)
    }

    /// A device that answers `bytes` during turn `on` of the wait.
    fn answers_on(device: &Shared, on: u64, bytes: &'static [u8]) -> impl FnMut(u64) + use<> {
        let device = device.clone();
        move |turn| {
            if turn == on {
                assert!(device.lock().unwrap().answer(|_| bytes.to_vec()));
            }
        }
    }

    /// A request the device answers by filling `buf` (as an entropy request), waiting in
    /// `env` at most `timeout`.
    fn fill(
        queue: &mut PolledQueue<4, FakeTransport>,
        env: &mut impl WaitEnv,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<u32, Error> {
        queue.exchange_in(env, &[], &mut [buf], timeout)
    }

    #[test]
    fn deadlines_on_the_clock_and_in_turns() {
        let mut at = Deadline::after(Duration::from_millis(5), Some(1_000));
        assert_eq!(at, Deadline::At(1_000 + 5 * MS));
        assert!(!at.passed(Some(1_000 + 5 * MS - 1)));
        assert!(at.passed(Some(1_000 + 5 * MS)));
        assert_eq!(
            Deadline::after(Duration::MAX, Some(7)),
            Deadline::At(u64::MAX)
        );
        let mut turns = Deadline::after(Duration::from_nanos(350), None);
        assert_eq!(turns, Deadline::Turns(3));
        assert_eq!(
            [(); 4].map(|()| turns.passed(None)),
            [false, false, false, true]
        );
        // A zero timeout gives up at the first look.
        assert!(Deadline::after(Duration::ZERO, None).passed(None));
        assert!(Deadline::after(Duration::ZERO, Some(9)).passed(Some(9)));
    }

    #[test]
    fn a_device_timeout_follows_the_default_until_set() {
        assert_eq!(nanos(DEFAULT_TIMEOUT), 10_000_000_000);
        let timeout = Timeout::new();
        assert_eq!(timeout.get(), default_timeout());
        timeout.set(Duration::from_millis(20));
        assert_eq!(timeout.get(), Duration::from_millis(20));
        // The longest is still the device's own, not "follow the default".
        timeout.set(Duration::MAX);
        assert_eq!(timeout.get(), Duration::from_nanos(u64::MAX - 1));
    }

    #[test]
    fn a_device_that_answers_in_time_works_as_before() {
        let (device, mut queue, location) = rng_queue(0);
        let timeout = Duration::from_millis(10);
        // Answered during the third turn, 3 ms into the 10 ms.
        let mut env = FakeEnv::clocked(MS, answers_on(&device, 3, &[1, 2, 3, 4, 5, 6, 7, 8]));
        let mut buf = [0u8; 16];
        let got = fill(&mut queue, &mut env, &mut buf, timeout);
        assert_eq!(got, Ok(8));
        assert_eq!(&buf[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(env.turns, 3);
        // Answered in the last turn before the deadline: 9 ms.
        let mut env = FakeEnv::clocked(MS, answers_on(&device, 9, &[7; 4]));
        let mut buf = [0u8; 4];
        assert_eq!(fill(&mut queue, &mut env, &mut buf, timeout), Ok(4));
        assert_eq!((buf, env.turns), ([7; 4], 9));
        let d = device.lock().unwrap();
        assert_eq!((d.notified, d.resets, d.pending()), (2, 0, 0));
        drop(d);
        drop(queue);
        // Dropped normally: the device is free again.
        drop(Claim::take(location).unwrap());
    }

    #[test]
    fn an_answer_that_came_while_the_waiter_did_not_run_is_taken() {
        let (device, mut queue, _) = rng_queue(1);
        // One turn takes a whole second (another thread had the CPU), far past the 10 ms;
        // the device answered meanwhile.
        let mut env = FakeEnv::clocked(1_000 * MS, answers_on(&device, 1, &[5; 2]));
        let mut buf = [0u8; 2];
        let got = fill(&mut queue, &mut env, &mut buf, Duration::from_millis(10));
        assert_eq!(got, Ok(2));
        assert_eq!(device.lock().unwrap().resets, 0);
    }

    #[test]
    fn a_device_that_never_answers_times_out_is_reset_and_stays_out_of_use() {
        let (device, mut queue, location) = rng_queue(2);
        assert!(!queue.is_out_of_use());
        let mut env = FakeEnv::clocked(MS, |_| {});
        let mut buf = [0xeeu8; 8];
        let got = fill(&mut queue, &mut env, &mut buf, Duration::from_millis(50));
        assert_eq!(got, Err(Error::Timeout(location)));
        assert!(queue.is_out_of_use());
        // It waited the 50 ms, and no more.
        assert_eq!(env.turns, 50);
        assert_eq!(env.now, Some(1_000_000_000 + 50 * MS));
        {
            let d = device.lock().unwrap();
            assert_eq!(d.resets, 1, "the device was not reset");
            assert_eq!(d.status, DeviceStatus::empty());
            assert_eq!((d.notified, d.pending()), (1, 1));
        }
        assert_eq!(buf, [0xee; 8]);
        // Every later request fails at once: no wait, nothing put on the dead queue, no
        // notification, even with a device that would answer now.
        let mut env = FakeEnv::clocked(MS, answers_on(&device, 1, &[1]));
        let got = fill(&mut queue, &mut env, &mut buf, Duration::from_secs(10));
        assert_eq!(got, Err(Error::Timeout(location)));
        assert_eq!(env.turns, 0);
        let d = device.lock().unwrap();
        assert_eq!((d.notified, d.pending(), d.resets), (1, 1, 1));
        drop(d);
        // Reset and read back: dropped like any other, the device is free to be opened anew.
        drop(queue);
        drop(Claim::take(location).unwrap());
    }

    #[test]
    fn without_a_clock_the_wait_counts_turns() {
        let (device, mut queue, location) = rng_queue(3);
        let mut env = FakeEnv::clocked(MS, |_| {});
        env.now = None;
        let mut buf = [0u8; 8];
        // 10 µs at 100 ns a turn.
        let got = fill(&mut queue, &mut env, &mut buf, Duration::from_micros(10));
        assert_eq!(got, Err(Error::Timeout(location)));
        assert_eq!(env.turns, 10_000 / NS_PER_TURN_WITHOUT_CLOCK);
        assert_eq!(device.lock().unwrap().resets, 1);
    }

    #[test]
    fn a_device_that_ignores_its_reset_is_never_given_back() {
        let (device, mut queue, location) = rng_queue(4);
        device.lock().unwrap().ignores_reset = true;
        let mut env = FakeEnv::clocked(MS, |_| {});
        let mut buf = [0u8; 8];
        let got = fill(&mut queue, &mut env, &mut buf, Duration::from_millis(5));
        assert_eq!(got, Err(Error::Timeout(location)));
        // 5 ms for the answer, 5 ms more for the reset to read back.
        assert_eq!(env.turns, 10);
        assert!(
            device
                .lock()
                .unwrap()
                .status
                .contains(DeviceStatus::DRIVER_OK)
        );
        let got = fill(&mut queue, &mut env, &mut buf, Duration::from_millis(5));
        assert_eq!(got, Err(Error::Timeout(location)));
        // Dropping it returns (no wait for the reset), and leaves the device claimed: it
        // may still write the queue's memory, which is not freed either.
        drop(queue);
        assert_eq!(Claim::take(location).unwrap_err(), Error::Busy(location));
    }

    #[test]
    fn a_broken_answer_is_an_error_and_the_device_is_reset() {
        let (device, mut queue, location) = rng_queue(5);
        let answering = device.clone();
        // Reports a chain the driver never made available.
        let mut env = FakeEnv::clocked(MS, move |_| {
            answering
                .lock()
                .unwrap()
                .answer_as(Some(3), |_| std::vec![1; 4]);
        });
        let mut buf = [0u8; 8];
        let wrong = Err(Error::Device(location, virtio_drivers::Error::WrongToken));
        let got = fill(&mut queue, &mut env, &mut buf, Duration::from_millis(5));
        assert_eq!(got, wrong);
        assert_eq!(device.lock().unwrap().resets, 1);
        let turns = env.turns;
        let got = fill(&mut queue, &mut env, &mut buf, Duration::from_millis(5));
        assert_eq!(got, wrong);
        assert_eq!(env.turns, turns);
    }

    #[test]
    fn a_refused_request_leaves_the_device_working() {
        let (device, mut queue, location) = rng_queue(6);
        let mut env = FakeEnv::clocked(MS, answers_on(&device, 1, &[3]));
        let timeout = Duration::from_millis(5);
        assert_eq!(
            queue.exchange_in(&mut env, &[], &mut [], timeout),
            Err(Error::Device(location, virtio_drivers::Error::InvalidParam))
        );
        let mut buf = [0u8; 1];
        assert_eq!(fill(&mut queue, &mut env, &mut buf, timeout), Ok(1));
        assert_eq!(device.lock().unwrap().resets, 0);
    }
}
