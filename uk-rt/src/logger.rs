//! `log` output on the board console, each record stamped with the board clock:
//! `[    0.001234] WARN  target: message`.

use core::fmt::Write;

use log::{LevelFilter, Log, Metadata, Record};
use uk_hal::{ConsoleWriter, Platform};

struct ConsoleLogger {
    platform: spin::Once<&'static dyn Platform>,
}

static LOGGER: ConsoleLogger = ConsoleLogger {
    platform: spin::Once::new(),
};

/// Writes one record: timestamp (seconds.microseconds since the first instruction), level,
/// target, message.
pub(crate) fn write_record(
    out: &mut impl Write,
    now_ns: u64,
    record: &Record<'_>,
) -> core::fmt::Result {
    let micros = now_ns / 1_000;
    writeln!(
        out,
        "[{:>5}.{:06}] {:<5} {}: {}",
        micros / 1_000_000,
        micros % 1_000_000,
        record.level(),
        record.target(),
        record.args()
    )
}

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if let Some(platform) = self.platform.get() {
            let _ = write_record(
                &mut ConsoleWriter(*platform),
                platform.monotonic_ns(),
                record,
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the console logger (first call only) at `level`.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn init(platform: &'static dyn Platform, level: LevelFilter) {
    LOGGER.platform.call_once(|| platform);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;

    #[test]
    fn record_format_has_timestamp_level_and_target() {
        let mut out = String::new();
        let args = format_args!("hello {}", 7);
        let record = log::Record::builder()
            .args(args)
            .level(log::Level::Warn)
            .target("uk_rt")
            .build();
        super::write_record(&mut out, 12_345_678_901, &record).unwrap();
        assert_eq!(out, "[   12.345678] WARN  uk_rt: hello 7\n");
    }
}
