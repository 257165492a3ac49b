//! ENOSYS logging for numbers beyond the table: once per number for the first 16 distinct
//! ones, then one notice, then silence. Its own process: the memory is global and bounded.

use std::sync::Mutex;

use uk_syscall::{TABLE_LEN, dispatch};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;
impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

fn count(needle: &str) -> usize {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

const ENOSYS: isize = -38;

#[test]
fn beyond_the_table_each_number_once_then_bounded() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let needle = |n: usize| format!("({n}) is not implemented");
    // Huge, "negative" and just-past-the-end numbers: ENOSYS, one line each.
    let first = [TABLE_LEN, 100_000, usize::MAX, -2isize as usize];
    for n in first {
        assert_eq!(dispatch(n, &[0; 6]), ENOSYS);
        assert_eq!(dispatch(n, &[1; 6]), ENOSYS);
        assert_eq!(count(&needle(n)), 1, "{n}");
    }
    // Fill the memory (16 numbers), then more: one notice, nothing logged twice.
    for n in 0..40usize {
        assert_eq!(dispatch((1 << 40) | n, &[0; 6]), ENOSYS);
    }
    assert_eq!(count("further ones are not logged"), 1);
    let total = LINES.lock().unwrap().len();
    for n in first.into_iter().chain((0..40).map(|n| (1 << 40) | n)) {
        assert_eq!(dispatch(n, &[0; 6]), ENOSYS);
    }
    assert_eq!(LINES.lock().unwrap().len(), total, "no line repeated");
    for n in 0..12usize {
        assert_eq!(count(&needle((1 << 40) | n)), 1, "first 12 logged");
    }
    assert_eq!(count(&needle((1 << 40) | 39)), 0, "past the bound: silent");
}
