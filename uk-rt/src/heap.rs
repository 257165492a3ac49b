//! The early heap: `talc` over every usable memory region, serving `alloc::` before `main`.
//!
//! `uk-alloc` brings the project's own allocators; until then this keeps images small and
//! gives them every region the board found (talc manages several disjoint arenas, where a
//! single-arena heap would waste all but the largest region).

use talc::{ErrOnOom, Span, Talc, Talck};
use uk_hal::MemoryRegion;

#[global_allocator]
static HEAP: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

/// Gives every region to the heap. Regions that are too small for talc's bookkeeping are
/// skipped with a debug log line.
pub(crate) fn init(regions: &[MemoryRegion]) {
    let mut talc = HEAP.lock();
    for region in regions {
        let span = Span::from_base_size(region.base as usize as *mut u8, region.size as usize);
        // SAFETY: the board guarantees (see `uk_rt::start`) that every listed region is
        // mapped, writable and used by nothing else, and regions do not overlap; we claim
        // each once.
        if unsafe { talc.claim(span) }.is_err() {
            log::debug!(
                "memory region {:#x}+{:#x} too small for the heap",
                region.base,
                region.size
            );
        }
    }
}
