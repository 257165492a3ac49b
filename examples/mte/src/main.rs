//! Memory tagging on uk-rs: a [`uk_mte::Tagged`] heap gives every allocation a random tag
//! and its memory the same tag, so that a one-granule overflow and a use after free are
//! caught. The same code runs on every board; where the CPU has no MTE (x86, Cortex-A72,
//! QEMU `virt` without tag memory) the wrapper passes through and the example says so.
//!
//! ```text
//! cargo uk run --example mte                                   # x86-pc: not present
//! cargo uk run --example mte --board qemu-virt                 # -cpu max, no tag memory
//! cargo uk run --example mte --board qemu-virt --variant mte   # mte=on: caught
//! cargo uk run --example mte --board qemu-virt --variant mte -- fault
//! ```
//!
//! A tag check fault ends the image, so the example shows what the hardware would do with
//! the instruction that reads a granule's memory tag (`ldg`): an access faults exactly when
//! the pointer's tag differs from the memory tag of the granule it touches. The argument
//! `fault` then performs the overflowing store for real: with MTE on, the board reports the
//! tag check fault (address, pointer and memory tags, access, ELR) and the image exits with
//! status 101.
//!
//! QEMU before 8.0 keeps one tag per page instead of one per granule (its issue 1416);
//! `uk_mte::enable` detects that and refuses, and the example reports it and passes
//! through.
#![no_std]
#![no_main]

extern crate alloc;

use core::alloc::Layout;
use core::ptr::NonNull;

use uk_alloc::{Allocator, Locked, Tlsf};
use uk_app::println;
use uk_mte::tag::{GRANULE, Tag, strip, tag_of};
use uk_mte::tagged::TagStore;
use uk_mte::{CheckMode, MteError, Tagged};

uk_app::main!(main);

/// Bytes of the image heap the tagged heap manages.
const ARENA: usize = 64 * 1024;

fn main(args: &uk_app::Args) -> i32 {
    let support = uk_mte::detect();
    println!(
        "mte: on {}, CPU MTE level {}",
        uk_app::platform().board_name(),
        support.level
    );
    match uk_mte::enable(CheckMode::Synchronous) {
        Ok(()) => println!("mte: MTE present, synchronous tag checks on"),
        Err(e @ MteError::NotSupported { .. }) => {
            println!("mte: MTE not present, tagging passes through ({e})");
        }
        Err(e) => println!("mte: MTE present but not usable, tagging passes through ({e})"),
    }

    if !give_memory() {
        println!("mte: no memory for the tagged heap");
        return 1;
    }
    // Held to the end: nothing else allocates from it.
    let mut heap = HEAP.lock();

    // An in-bounds use works whether or not tags are checked.
    let Ok(p) = heap.malloc(32) else {
        println!("mte: malloc(32) failed");
        return 1;
    };
    // SAFETY: `p` holds 32 bytes.
    let sum = unsafe {
        for i in 0..32 {
            p.as_ptr().add(i).write_volatile(i as u8);
        }
        (0..32)
            .map(|i| p.as_ptr().add(i).read_volatile() as usize)
            .sum::<usize>()
    };
    if sum != (0..32).sum::<usize>() {
        println!("mte: the allocation did not keep its contents");
        return 1;
    }
    println!(
        "mte: malloc(32) = {:#x} (pointer tag {}), 32 bytes written and read back",
        p.as_ptr() as usize,
        tag_of(p.as_ptr())
    );

    // The granule right after the 32 bytes: what `p[32] = x` would touch.
    // SAFETY: the granule after the allocation is the next block's header, inside the arena.
    let overflow = unsafe { check(&heap, p.as_ptr().wrapping_add(32)) };
    report("overflow by one granule", overflow);

    // SAFETY: `p` is live and came from `heap`.
    if let Err(e) = unsafe { heap.free(p) } {
        println!("mte: free failed: {e:?}");
        return 1;
    }
    // SAFETY: `p`'s granule is freed memory of the arena, still mapped.
    let stale = unsafe { check(&heap, p.as_ptr()) };
    report("use after free", stale);

    // SAFETY: `Tagged` (tag mismatch) and TLSF (free header) both recognise a second free
    // of the same pointer before touching anything.
    match unsafe { heap.free(p) } {
        Err(e) => println!("mte: second free refused: {e:?}"),
        Ok(()) => {
            println!("mte: a second free was accepted");
            return 1;
        }
    }

    if args.iter().any(|a| *a == "fault") {
        let Ok(q) = heap.malloc(32) else {
            println!("mte: malloc(32) failed");
            return 1;
        };
        println!("mte: storing one granule past a 32-byte allocation...");
        // SAFETY: deliberately out of bounds by one granule, into the next block's header
        // (tag 0): with MTE on the store faults before it writes; without, it overwrites
        // a word of the allocator's header that the image never uses again.
        unsafe { q.as_ptr().add(32).write_volatile(0xee) };
        println!("mte: the overflowing store did not fault");
    }
    println!("mte: done");
    0
}

/// The tagged heap: a [`Tagged`] TLSF (kept in a `static`: the allocator's list heads take
/// 10 KiB, too much for a small boot stack).
static HEAP: Locked<Tagged<Tlsf>> = Locked::new(Tagged::new(Tlsf::new()));

/// Gives the tagged heap a chunk of the image heap (never given back).
fn give_memory() -> bool {
    let Ok(layout) = Layout::from_size_align(ARENA, 4096) else {
        return false;
    };
    // SAFETY: a non-zero size; the result is checked.
    let Some(chunk) = NonNull::new(unsafe { alloc::alloc::alloc(layout) }) else {
        return false;
    };
    // SAFETY: the chunk is a fresh allocation, never freed nor used otherwise, and carries
    // allocation tag 0 (nothing has tagged the image heap).
    unsafe { HEAP.lock().add_memory(chunk.as_ptr(), ARENA) }.is_ok()
}

/// What an access through `ptr` would meet: `Some((pointer tag, memory tag))` while tags
/// are checked, `None` where the heap passes through.
///
/// # Safety
///
/// `ptr`'s granule must be mapped memory of `heap`'s arena.
unsafe fn check(heap: &Tagged<Tlsf>, ptr: *const u8) -> Option<(Tag, Tag)> {
    let store = heap.store();
    if !store.active() {
        return None;
    }
    let granule = strip(ptr.cast_mut()) as usize & !(GRANULE - 1);
    // SAFETY: active, so the CPU has MTE2; the caller vouches for the address.
    let memory = unsafe { store.load_tag(granule) };
    Some((tag_of(ptr), memory))
}

fn report(what: &str, seen: Option<(Tag, Tag)>) {
    match seen {
        None => println!("mte: {what}: not caught (untagged pointer)"),
        Some((pointer, memory)) if pointer != memory => println!(
            "mte: {what}: caught: pointer tag {pointer}, memory tag {memory}, so the access \
             raises a tag check fault"
        ),
        Some((pointer, _)) => {
            println!("mte: {what}: NOT caught: pointer and memory tag are both {pointer}")
        }
    }
}
