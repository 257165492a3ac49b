//! [`Pool`]: a lockable generator that seeds itself from the best source it can find.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use uk_hal::Clock;
use zeroize::Zeroize;

use crate::device::{self, DeviceError, EntropyDevice};
use crate::drbg::{ChaCha20Drbg, ReseedPolicy};
use crate::irq::IrqGuard;
use crate::jitter::Jitter;
use crate::source::{RandomSource, SourceError, SourceKind};

/// The most bytes produced under one hold of the lock (interrupts stay masked meanwhile);
/// a larger request takes the lock again for each chunk, with a fresh key each time.
pub const CHUNK: usize = 4096;

/// Outputs a hardware source must give at detection: all of them, and not all equal (a
/// known failure mode of some RDRAND implementations is a constant all-ones value).
const SELF_TEST_WORDS: usize = 4;

/// Why a [`Pool`] gave no output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The generator is not seeded yet and seeding would have to wait for timer jitter, but
    /// the caller asked not to wait.
    WouldBlock,
    /// No hardware source, no entropy device, and no clock registered ([`Pool::set_clock`])
    /// to take jitter from.
    NoSource,
    /// Every source failed (the last failure is given).
    Source(SourceError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlock => f.write_str("not seeded yet, and seeding would block"),
            Error::NoSource => f.write_str(
                "no hardware random source and no clock for timer jitter (call init first)",
            ),
            Error::Source(e) => write!(f, "every random source failed ({e})"),
        }
    }
}

impl core::error::Error for Error {}

impl From<SourceError> for Error {
    fn from(e: SourceError) -> Self {
        Error::Source(e)
    }
}

/// Whether a request may wait for seeding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Seed first if needed, from hardware, an entropy device or (taking a few
    /// milliseconds) timer jitter.
    Yes,
    /// Seed only if hardware or an entropy device can do it; otherwise fail with
    /// [`Error::WouldBlock`] rather than sample jitter.
    No,
}

/// A snapshot of a [`Pool`]'s state, for reports and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The hardware source found (after its self-test), if any; `None` also before the
    /// first use.
    pub hardware: Option<SourceKind>,
    /// The entropy device registered with [`Pool::set_device`], if any.
    pub device: Option<SourceKind>,
    /// The source of the initial seed; `None` while unseeded.
    pub seeded_by: Option<SourceKind>,
    /// Successful reseeds.
    pub reseeds: u64,
    /// Reseeds that failed (the generator went on with its current key and retries at the
    /// next request).
    pub reseed_failures: u64,
    /// Bytes of output produced.
    pub bytes: u64,
}

enum Probe<H> {
    /// Not probed yet: detect, then self-test.
    Detect(fn() -> Option<H>),
    /// Given by the owner, not self-tested yet.
    Given(Option<H>),
    /// Probed and self-tested.
    Done(Option<H>),
}

struct Inner<H> {
    probe: Probe<H>,
    drbg: Option<ChaCha20Drbg>,
    seeded_by: Option<SourceKind>,
    reseed_failures: u64,
    bytes: u64,
}

/// A ChaCha20 generator behind an interrupt-safe lock, with its seed sources.
///
/// On first use the pool probes for hardware (the `detect` function given to [`Pool::new`])
/// and self-tests it. Seeds come from the hardware's seed-grade output (RNDRRS, RDSEED);
/// without working hardware, from the entropy device given to [`Pool::set_device`] (a
/// virtio-rng device, read outside the lock); and failing both, from timer jitter ([`Jitter`] over the clock given to [`Pool::set_clock`], or
/// else the image's system clock, [`uk_hal::system_clock`]) when there is no hardware or it
/// fails. The first use of jitter in the image is logged as a
/// warning.
///
/// The generator reseeds by its [`ReseedPolicy`]. A failed reseed is counted and logged, the
/// generator continues under its current (still secret, forward-erased) key, and the next
/// request tries again.
///
/// The lock is a spin lock taken with interrupts masked, so interrupt handlers may call in.
/// It is held for at most [`CHUNK`] bytes of output or one hardware seed; jitter sampling
/// runs outside it.
pub struct Pool<H> {
    inner: spin::Mutex<Inner<H>>,
    clock: spin::Once<&'static dyn Clock>,
    device: spin::Once<&'static dyn EntropyDevice>,
    policy: ReseedPolicy,
}

/// Set once the jitter warning was logged: once per image, however many pools exist.
static WARNED_JITTER: AtomicBool = AtomicBool::new(false);

impl<H: RandomSource> Pool<H> {
    /// A pool that probes for hardware with `detect` on first use.
    pub const fn new(detect: fn() -> Option<H>, policy: ReseedPolicy) -> Self {
        Pool::from_probe(Probe::Detect(detect), policy)
    }

    /// A pool with a given hardware source (or none), for tests and custom sources. The
    /// source is self-tested on first use like a detected one.
    pub const fn with_source(source: Option<H>, policy: ReseedPolicy) -> Self {
        Pool::from_probe(Probe::Given(source), policy)
    }

    const fn from_probe(probe: Probe<H>, policy: ReseedPolicy) -> Self {
        Pool {
            inner: spin::Mutex::new(Inner {
                probe,
                drbg: None,
                seeded_by: None,
                reseed_failures: 0,
                bytes: 0,
            }),
            clock: spin::Once::new(),
            device: spin::Once::new(),
            policy,
        }
    }

    /// Registers the clock for timer jitter and time-based reseeding (first call wins).
    pub fn set_clock(&self, clock: &'static dyn Clock) {
        self.clock.call_once(|| clock);
    }

    /// Registers `device` as the seed source for when the CPU has no working instruction,
    /// after a self-test (two 32-byte reads that must succeed, differ, and not be one byte
    /// repeated). The first device registered stays.
    ///
    /// The device is read for the first seed and for reseeds, outside the pool's lock; a
    /// request waiting for a seed waits for the device. A device that fails later is
    /// logged and the seed falls back to jitter.
    ///
    /// # Errors
    ///
    /// [`DeviceError::AlreadySet`] when a device is registered already;
    /// [`DeviceError::Failed`] or [`DeviceError::Rejected`] when the self-test fails (the
    /// pool is left as it was).
    pub fn set_device(&self, device: &'static dyn EntropyDevice) -> Result<(), DeviceError> {
        if let Some(set) = self.device.get() {
            return Err(DeviceError::AlreadySet(set.kind()));
        }
        device::self_test(device)?;
        let set = self.device.call_once(|| device);
        if !core::ptr::addr_eq(*set, device) {
            return Err(DeviceError::AlreadySet(set.kind()));
        }
        Ok(())
    }

    /// Fills `dest` with output of the generator, seeding it first if needed.
    ///
    /// With [`Wait::No`] an unseeded pool without working hardware fails with
    /// [`Error::WouldBlock`] instead of sampling jitter. On error nothing was written.
    pub fn fill(&self, dest: &mut [u8], wait: Wait) -> Result<(), Error> {
        self.ensure_seeded(wait)?;
        for chunk in dest.chunks_mut(CHUNK) {
            self.fill_chunk(chunk);
        }
        Ok(())
    }

    /// Seeds the generator now if it is not seeded; returns the source of the initial seed.
    pub fn ensure_seeded(&self, wait: Wait) -> Result<SourceKind, Error> {
        if let Some(kind) = self.lock().seeded_by {
            return Ok(kind);
        }
        let mut seed = [0u8; 32];
        let result = self.collect_seed(&mut seed, wait);
        let kind = match result {
            Ok(kind) => kind,
            Err(e) => {
                seed.zeroize();
                return Err(e);
            }
        };
        let now = self.now_ns();
        let mut inner = self.lock();
        let first = match inner.drbg.as_mut() {
            // Someone else seeded meanwhile: mix ours in rather than waste it.
            Some(drbg) => {
                drbg.reseed(&seed, now);
                false
            }
            None => {
                inner.drbg = Some(ChaCha20Drbg::from_seed(seed, now, self.policy));
                inner.seeded_by = Some(kind);
                true
            }
        };
        let seeded_by = inner.seeded_by.unwrap_or(kind);
        drop(inner);
        seed.zeroize();
        if first {
            log::info!("ChaCha20 generator seeded from {kind}");
        }
        Ok(seeded_by)
    }

    /// A snapshot of the pool's state (probes for hardware if that has not happened yet).
    pub fn status(&self) -> Status {
        let mut inner = self.lock();
        let hardware = Self::hardware(&mut inner).map(|hw| hw.kind());
        Status {
            hardware,
            device: self.device.get().map(|d| d.kind()),
            seeded_by: inner.seeded_by,
            reseeds: inner.drbg.as_ref().map_or(0, ChaCha20Drbg::reseeds),
            reseed_failures: inner.reseed_failures,
            bytes: inner.bytes,
        }
    }

    /// Runs `f` on the hardware source (probing for it first), under the pool's lock.
    ///
    /// Keep `f` short: interrupts are masked while it runs.
    pub fn with_hardware<R>(&self, f: impl FnOnce(Option<&mut H>) -> R) -> R {
        let mut inner = self.lock();
        f(Self::hardware(&mut inner))
    }

    fn lock(&self) -> Locked<'_, H> {
        let irq = IrqGuard::new();
        Locked {
            inner: self.inner.lock(),
            _irq: irq,
        }
    }

    fn now_ns(&self) -> Option<u64> {
        self.clock().map(|clock| clock.monotonic_ns())
    }

    /// The clock given to [`Pool::set_clock`], else the image's system clock (registered
    /// by the runtime at boot), so that an image without a hardware generator seeds from
    /// jitter without having to call [`crate::init`] first.
    fn clock(&self) -> Option<&'static dyn Clock> {
        self.clock.get().copied().or_else(uk_hal::system_clock)
    }

    /// Probes (once) and returns the hardware source.
    fn hardware(inner: &mut Inner<H>) -> Option<&mut H> {
        if !matches!(inner.probe, Probe::Done(_)) {
            let candidate = match core::mem::replace(&mut inner.probe, Probe::Done(None)) {
                Probe::Detect(detect) => detect(),
                Probe::Given(source) | Probe::Done(source) => source,
            };
            let found = candidate.and_then(|mut hw| match self_test(&mut hw) {
                Ok(()) => Some(hw),
                Err(reason) => {
                    log::warn!(
                        "{} failed its self-test ({reason}); not using it",
                        hw.kind()
                    );
                    None
                }
            });
            inner.probe = Probe::Done(found);
        }
        match &mut inner.probe {
            Probe::Done(found) => found.as_mut(),
            Probe::Detect(_) | Probe::Given(_) => None,
        }
    }

    /// Fills `seed` from hardware, else from the entropy device, else from jitter. Returns
    /// the source used.
    fn collect_seed(&self, seed: &mut [u8; 32], wait: Wait) -> Result<SourceKind, Error> {
        let hardware_error = {
            let mut inner = self.lock();
            match Self::hardware(&mut inner) {
                Some(hw) => match hw.fill_seed(seed) {
                    Ok(()) => return Ok(hw.kind()),
                    Err(e) => Some(e),
                },
                None => None,
            }
        };
        if let Some(e) = hardware_error {
            log::warn!("hardware seed failed ({e})");
        }
        let mut failure = hardware_error;
        if let Some(device) = self.device.get() {
            match device.fill_entropy(seed) {
                Ok(()) => return Ok(device.kind()),
                Err(e) => {
                    log::warn!("entropy device seed failed ({e})");
                    failure = Some(e);
                }
            }
        }
        if wait == Wait::No {
            return Err(Error::WouldBlock);
        }
        let Some(clock) = self.clock() else {
            return Err(failure.map_or(Error::NoSource, Error::Source));
        };
        if !WARNED_JITTER.swap(true, Ordering::Relaxed) {
            log::warn!(
                "no hardware random number instruction or entropy device in use; seeding from \
                 timer jitter (weaker)"
            );
        }
        Jitter::new(clock).fill_seed(seed)?;
        Ok(SourceKind::Jitter)
    }

    /// One chunk of output under the lock, reseeding first when the policy asks.
    fn fill_chunk(&self, chunk: &mut [u8]) {
        let now = self.now_ns();
        let due = self
            .lock()
            .drbg
            .as_ref()
            .is_some_and(|drbg| drbg.needs_reseed(now));
        if due {
            self.reseed(now);
        }
        let mut inner = self.lock();
        let drbg = inner
            .drbg
            .as_mut()
            .expect("seeded before any chunk (ensure_seeded ran, nothing unseeds)");
        drbg.fill(chunk);
        inner.bytes += chunk.len() as u64;
    }

    /// Fetches fresh seed material (hardware under the lock, or jitter outside it) and
    /// mixes it in; counts and logs a failure instead.
    fn reseed(&self, now: Option<u64>) {
        let mut seed = [0u8; 32];
        match self.collect_seed(&mut seed, Wait::Yes) {
            Ok(_) => {
                if let Some(drbg) = self.lock().drbg.as_mut() {
                    drbg.reseed(&seed, now);
                }
            }
            Err(e) => {
                // The policy still asks for a reseed, so the next chunk tries again.
                self.lock().reseed_failures += 1;
                log::warn!("reseed failed ({e}); keeping the current key");
            }
        }
        seed.zeroize();
    }
}

/// The lock guard; the interrupt guard is dropped (unmasking) after the lock is released.
struct Locked<'a, H> {
    inner: spin::MutexGuard<'a, Inner<H>>,
    _irq: IrqGuard,
}

impl<H> core::ops::Deref for Locked<'_, H> {
    type Target = Inner<H>;
    fn deref(&self) -> &Inner<H> {
        &self.inner
    }
}

impl<H> core::ops::DerefMut for Locked<'_, H> {
    fn deref_mut(&mut self) -> &mut Inner<H> {
        &mut self.inner
    }
}

/// Draws a few outputs of each kind; all must succeed and not all be equal.
fn self_test<H: RandomSource + ?Sized>(hw: &mut H) -> Result<(), &'static str> {
    let mut random = [0u64; SELF_TEST_WORDS];
    let mut seeds = [0u64; SELF_TEST_WORDS];
    let mut verdict = Ok(());
    for (r, s) in random.iter_mut().zip(seeds.iter_mut()) {
        match (hw.random_u64(), hw.seed_u64()) {
            (Ok(a), Ok(b)) => (*r, *s) = (a, b),
            _ => {
                verdict = Err("it keeps reporting failure");
                break;
            }
        }
    }
    let constant = |words: &[u64]| words.iter().all(|&w| w == words[0]);
    if verdict.is_ok() && (constant(&random) || constant(&seeds)) {
        verdict = Err("it returns a constant");
    }
    random.zeroize();
    seeds.zeroize();
    verdict
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::sync::atomic::AtomicU64;
    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;
    use crate::device::tests::FakeDevice;
    use crate::source::tests::Fake;
    use crate::source::{RANDOM_ATTEMPTS, SEED_ATTEMPTS};

    /// A clock the test moves by hand, with a jittery cycle counter.
    struct TestClock {
        ns: AtomicU64,
        cycles: AtomicU64,
    }

    impl Clock for TestClock {
        fn monotonic_ns(&self) -> u64 {
            self.ns.load(Ordering::Relaxed)
        }
        fn cycles(&self) -> u64 {
            // Irregular steps (a xorshift of the previous value), never a fixed pattern.
            let mut x = self.cycles.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.cycles.store(x, Ordering::Relaxed);
            x % 1_000_000_007
        }
        fn cycles_per_second(&self) -> u64 {
            1_000_000_000
        }
    }

    fn test_clock() -> &'static TestClock {
        Box::leak(Box::new(TestClock {
            ns: AtomicU64::new(1_000),
            cycles: AtomicU64::new(0x1234_5678_9abc_def1),
        }))
    }

    /// A source whose every output is the same value.
    struct Constant;

    impl RandomSource for Constant {
        fn kind(&self) -> SourceKind {
            SourceKind::Other("constant")
        }
        fn try_random(&mut self) -> Option<u64> {
            Some(u64::MAX)
        }
    }

    const SMALL: ReseedPolicy = ReseedPolicy {
        max_bytes: 4096,
        max_interval_ns: 1_000_000,
    };

    #[test]
    fn seeds_from_hardware_through_transient_failures() {
        let pool = Pool::with_source(
            Some(Fake::failing(RANDOM_ATTEMPTS - 1, SEED_ATTEMPTS - 1)),
            ReseedPolicy::DEFAULT,
        );
        let mut buf = [0u8; 64];
        pool.fill(&mut buf, Wait::No).unwrap();
        let status = pool.status();
        assert_eq!(status.hardware, Some(SourceKind::Other("fake")));
        assert_eq!(status.seeded_by, Some(SourceKind::Other("fake")));
        assert_eq!(status.bytes, 64);
    }

    #[test]
    fn hardware_failing_its_self_test_falls_back_to_jitter() {
        // Seed output never works: rejected at the probe.
        let pool = Pool::with_source(Some(Fake::failing(0, u32::MAX)), ReseedPolicy::DEFAULT);
        let mut buf = [0u8; 32];
        assert_eq!(pool.fill(&mut buf, Wait::Yes), Err(Error::NoSource));
        assert_eq!(pool.fill(&mut buf, Wait::No), Err(Error::WouldBlock));
        pool.set_clock(test_clock());
        pool.fill(&mut buf, Wait::Yes).unwrap();
        let status = pool.status();
        assert_eq!(
            (status.hardware, status.seeded_by),
            (None, Some(SourceKind::Jitter))
        );

        // A constant source is rejected too.
        let pool = Pool::with_source(Some(Constant), ReseedPolicy::DEFAULT);
        pool.set_clock(test_clock());
        assert_eq!(pool.ensure_seeded(Wait::Yes), Ok(SourceKind::Jitter));
        assert_eq!(pool.status().hardware, None);
    }

    #[test]
    fn hardware_failing_after_the_probe_falls_back_to_jitter_or_reports() {
        let pool = Pool::with_source(Some(Fake::failing(0, 0)), ReseedPolicy::DEFAULT);
        pool.with_hardware(|hw| hw.unwrap().fail_seed = u32::MAX);
        // No clock: the hardware error is reported as it is.
        let mut buf = [0u8; 8];
        match pool.fill(&mut buf, Wait::Yes) {
            Err(Error::Source(e)) => {
                assert_eq!(e.kind, SourceKind::Other("fake"));
                assert_eq!(e.attempts, SEED_ATTEMPTS);
            }
            other => panic!("{other:?}"),
        }
        pool.set_clock(test_clock());
        assert_eq!(pool.ensure_seeded(Wait::Yes), Ok(SourceKind::Jitter));
    }

    #[test]
    fn without_hardware_the_device_seeds_and_reseeds_before_jitter_is_tried() {
        let device: &'static FakeDevice = Box::leak(Box::new(FakeDevice::new(0)));
        let pool = Pool::<Fake>::with_source(None, SMALL);
        pool.set_device(device).unwrap();
        let self_test = device.requests.load(Ordering::Relaxed);
        assert_eq!(self_test, 2);
        // No clock, and a caller that does not wait: the device is enough.
        let mut buf = std::vec![0u8; 3 * CHUNK];
        pool.fill(&mut buf, Wait::No).unwrap();
        let status = pool.status();
        let kind = SourceKind::Other("fake device");
        assert_eq!(
            (status.hardware, status.device, status.seeded_by),
            (None, Some(kind), Some(kind))
        );
        assert_eq!((status.reseeds, status.reseed_failures), (2, 0));
        // The first seed and two reseeds, one request each.
        assert_eq!(device.requests.load(Ordering::Relaxed), self_test + 3);

        // A second device is refused and changes nothing.
        let other: &'static FakeDevice = Box::leak(Box::new(FakeDevice::new(0)));
        assert_eq!(pool.set_device(other), Err(DeviceError::AlreadySet(kind)));
        assert_eq!(other.requests.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn working_hardware_comes_before_the_device() {
        let device: &'static FakeDevice = Box::leak(Box::new(FakeDevice::new(0)));
        let pool = Pool::with_source(Some(Fake::failing(0, 0)), ReseedPolicy::DEFAULT);
        pool.set_device(device).unwrap();
        assert_eq!(pool.ensure_seeded(Wait::Yes), Ok(SourceKind::Other("fake")));
        assert_eq!(
            device.requests.load(Ordering::Relaxed),
            2,
            "only the self-test"
        );
    }

    #[test]
    fn a_device_failing_its_self_test_is_not_taken_and_a_failing_device_falls_back() {
        let broken: &'static FakeDevice = Box::leak(Box::new(FakeDevice::new(1)));
        let pool = Pool::<Fake>::with_source(None, ReseedPolicy::DEFAULT);
        assert!(matches!(
            pool.set_device(broken),
            Err(DeviceError::Failed(_))
        ));
        assert_eq!(pool.status().device, None);
        let mut buf = [0u8; 16];
        assert_eq!(pool.fill(&mut buf, Wait::No), Err(Error::WouldBlock));

        // Passes its self-test, then fails the seed: reported without a clock, jitter with
        // one, and never the device's unfinished bytes.
        let flaky: &'static FakeDevice = Box::leak(Box::new(FakeDevice::new(0)));
        let pool = Pool::<Fake>::with_source(None, ReseedPolicy::DEFAULT);
        pool.set_device(flaky).unwrap();
        flaky.failures.store(1, Ordering::Relaxed);
        match pool.fill(&mut buf, Wait::Yes) {
            Err(Error::Source(e)) => assert_eq!(e.kind, SourceKind::Other("fake device")),
            other => panic!("{other:?}"),
        }
        assert_eq!(pool.status().seeded_by, None);
        flaky.failures.store(1, Ordering::Relaxed);
        pool.set_clock(test_clock());
        assert_eq!(pool.ensure_seeded(Wait::Yes), Ok(SourceKind::Jitter));
    }

    #[test]
    fn reseeds_by_bytes_from_the_seed_output() {
        let pool = Pool::with_source(Some(Fake::failing(0, 0)), SMALL);
        let mut buf = std::vec![0u8; 16 * CHUNK];
        pool.fill(&mut buf, Wait::Yes).unwrap();
        let status = pool.status();
        assert_eq!(status.reseeds, 15, "{status:?}");
        assert_eq!(status.reseed_failures, 0);
        let seed_calls = pool.with_hardware(|hw| hw.unwrap().seed_calls);
        // Self-test (4), initial seed (4), 15 reseeds of 4 words.
        assert_eq!(seed_calls, 4 + 4 + 15 * 4);
        // No two 4 KiB chunks repeat.
        let chunks: Vec<&[u8]> = buf.chunks(CHUNK).collect();
        for (i, a) in chunks.iter().enumerate() {
            for b in &chunks[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn reseeds_by_time() {
        let clock = test_clock();
        let pool = Pool::with_source(Some(Fake::failing(0, 0)), SMALL);
        pool.set_clock(clock);
        let mut buf = [0u8; 16];
        pool.fill(&mut buf, Wait::Yes).unwrap();
        clock.ns.fetch_add(999_999, Ordering::Relaxed);
        pool.fill(&mut buf, Wait::Yes).unwrap();
        assert_eq!(pool.status().reseeds, 0);
        clock.ns.fetch_add(1, Ordering::Relaxed);
        pool.fill(&mut buf, Wait::Yes).unwrap();
        assert_eq!(pool.status().reseeds, 1);
    }

    #[test]
    fn a_failed_reseed_is_counted_and_retried_and_output_goes_on() {
        let pool = Pool::with_source(Some(Fake::failing(0, 0)), SMALL);
        let mut buf = [0u8; CHUNK];
        pool.fill(&mut buf, Wait::Yes).unwrap();
        pool.with_hardware(|hw| hw.unwrap().fail_seed = u32::MAX);
        let before = buf;
        pool.fill(&mut buf, Wait::Yes).unwrap();
        assert_ne!(buf, before);
        pool.fill(&mut buf, Wait::Yes).unwrap();
        let status = pool.status();
        assert_eq!((status.reseeds, status.reseed_failures), (0, 2));
        // With a clock, the next reseed falls back to jitter and succeeds.
        pool.set_clock(test_clock());
        pool.fill(&mut buf, Wait::Yes).unwrap();
        let status = pool.status();
        assert_eq!((status.reseeds, status.reseed_failures), (1, 2));
    }

    #[test]
    fn pools_seeded_from_different_states_differ_and_threads_share_one() {
        let a = Pool::with_source(Some(Fake::failing(0, 0)), ReseedPolicy::DEFAULT);
        let mut fake = Fake::failing(0, 0);
        fake.state = 99;
        let b = Pool::with_source(Some(fake), ReseedPolicy::DEFAULT);
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill(&mut x, Wait::Yes).unwrap();
        b.fill(&mut y, Wait::Yes).unwrap();
        assert_ne!(x, y);

        let pool: &'static Pool<Fake> = Box::leak(Box::new(Pool::with_source(
            Some(Fake::failing(0, 0)),
            SMALL,
        )));
        let outputs: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut all = Vec::new();
                    for _ in 0..50 {
                        let mut buf = [0u8; 100];
                        pool.fill(&mut buf, Wait::Yes).unwrap();
                        all.extend_from_slice(&buf);
                    }
                    all
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(pool.status().bytes, 4 * 50 * 100);
        for (i, a) in outputs.iter().enumerate() {
            for b in &outputs[i + 1..] {
                assert_ne!(a[..100], b[..100]);
            }
        }
    }
}
