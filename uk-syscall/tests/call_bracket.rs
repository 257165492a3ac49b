//! The call bracket: `enter` before the handler, `leave` after the return hook, with the
//! token `enter` gave, also for a call nested in the return hook (its own test binary: the
//! bracket and the hook are process-wide and set once).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use uk_syscall::{Args, CallBracket, SyscallResult, dispatch, set_call_bracket, set_return_hook};

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static DEPTH: AtomicUsize = AtomicUsize::new(0);
static NESTED: AtomicUsize = AtomicUsize::new(0);

fn note(event: String) {
    EVENTS.lock().unwrap().push(event);
}

fn enter() -> usize {
    let depth = DEPTH.fetch_add(1, Ordering::SeqCst);
    note(format!("enter {depth}"));
    depth + 100
}

fn leave(token: usize) {
    note(format!("leave {token}"));
    DEPTH.fetch_sub(1, Ordering::SeqCst);
}

fn on_return() {
    note("return".into());
    // The first outer call makes one nested call from its return hook, as a signal
    // handler's system call would.
    if NESTED.fetch_add(1, Ordering::SeqCst) == 0 {
        assert_eq!(dispatch(PROBE, &[2, 0, 0, 0, 0, 0]), 2);
    }
}

const PROBE: usize = uk_syscall::TABLE_LEN - 1;

fn probe(args: &Args) -> SyscallResult {
    note(format!("handler {}", args[0]));
    Ok(args[0])
}

uk_syscall::register!(number PROBE => probe);

#[test]
fn enter_and_leave_bracket_the_handler_and_the_return_hook() {
    set_return_hook(on_return);
    set_call_bracket(CallBracket { enter, leave });
    assert_eq!(dispatch(PROBE, &[1, 0, 0, 0, 0, 0]), 1);
    assert_eq!(
        *EVENTS.lock().unwrap(),
        [
            "enter 0",
            "handler 1",
            "return",
            "enter 1",
            "handler 2",
            "return",
            "leave 101",
            "leave 100",
        ]
    );
    assert_eq!(DEPTH.load(Ordering::SeqCst), 0);
    // An unknown number is bracketed too (the layer's state must not depend on the handler).
    EVENTS.lock().unwrap().clear();
    assert_eq!(dispatch(uk_syscall::TABLE_LEN - 2, &[0; 6]), -38);
    assert_eq!(*EVENTS.lock().unwrap(), ["enter 0", "return", "leave 100"]);
}
