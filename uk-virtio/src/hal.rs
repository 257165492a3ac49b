//! The [`virtio_drivers::Hal`] of uk-rs images: DMA memory from the global allocator,
//! physical address = virtual address.

use core::alloc::Layout;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// The [`Hal`] for uk-rs images on boards that identity-map RAM and device registers.
///
/// Both boards of uk-rs (QEMU `virt` and x86 `pc`) run with an identity map: a virtual
/// address *is* the physical address the device sees. So:
///
/// - [`Hal::dma_alloc`] takes zeroed, page-aligned memory from the image's global allocator
///   (`alloc::alloc::alloc_zeroed`, 4 KiB alignment) and returns its address as both the
///   physical and the virtual address; a virtually contiguous allocation is physically
///   contiguous under an identity map. [`Hal::dma_dealloc`] gives it back.
/// - [`Hal::share`] returns the buffer's own address; [`Hal::unshare`] does nothing. No
///   bounce buffer is needed: QEMU's DMA is cache-coherent (it reads and writes guest RAM
///   directly, and the boards map RAM as normal write-back memory), so the driver's memory
///   barriers (which virtio-drivers issues around the rings) are all the ordering needed.
/// - [`Hal::mmio_phys_to_virt`] returns the physical address as the pointer. uk-virtio
///   asks the board ([`uk_hal::Platform::mmio_is_mapped`]) before it lets virtio-drivers
///   near a register window, so no unmapped address reaches it.
///
/// On aarch64 the top byte of an address is cleared before it is handed to a device: with
/// uk-mte's tagging allocator serving the heap, a pointer carries its memory tag in bits
/// 56-59 (top-byte-ignore), which is no part of the physical address.
///
/// # Other boards
///
/// A board whose kernel runs at other virtual addresses (a higher-half kernel, an offset
/// direct map), behind an IOMMU, or without coherent DMA (real Arm hardware with
/// non-snooping devices) needs its own `Hal`: `dma_alloc` must return physically contiguous
/// pages and translate, `share` must translate (and bounce or clean caches),
/// `mmio_phys_to_virt` must map the window as device memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct UkHal;

/// The layout of `pages` DMA pages (`None` for zero pages or an overflowing size).
fn dma_layout(pages: usize) -> Option<Layout> {
    if pages == 0 {
        return None;
    }
    Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
}

/// The physical address of the memory `ptr` points to, under the identity map.
pub(crate) fn phys_of(ptr: *const u8) -> PhysAddr {
    let address = ptr as usize as u64;
    if cfg!(target_arch = "aarch64") {
        // Top-byte-ignore: a tagged pointer's tag (bits 56-63) is not part of the address.
        address & 0x00ff_ffff_ffff_ffff
    } else {
        address
    }
}

// SAFETY: `dma_alloc` returns page-aligned, zeroed memory of the asked size that nothing
// else references until `dma_dealloc` (a fresh global allocation), or `(0, dangling)` on
// failure, which virtio-drivers' `Dma::new` turns into `Error::DmaError` without touching
// the pointer. `mmio_phys_to_virt` returns the identity-mapped address of a window uk-virtio
// checked with the board; `share` returns the address the device sees for the buffer under
// the identity map (see the type's docs for why that is sound).
unsafe impl Hal for UkHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(layout) = dma_layout(pages) else {
            return (0, NonNull::dangling());
        };
        // SAFETY: the layout has a non-zero size (`dma_layout` refuses zero pages).
        let memory = unsafe { alloc::alloc::alloc_zeroed(layout) };
        match NonNull::new(memory) {
            Some(memory) => (phys_of(memory.as_ptr()), memory),
            None => {
                log::warn!("uk-virtio: no memory for {pages} DMA pages");
                (0, NonNull::dangling())
            }
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let Some(layout) = dma_layout(pages) else {
            return -1;
        };
        // SAFETY: the caller passes back what `dma_alloc` returned for `pages` pages, which
        // came from `alloc_zeroed` with this very layout and was not freed yet.
        unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // virtio-drivers refuses a BAR at address 0 before it asks, and uk-virtio checked
        // the window with the board, so this is never null in practice.
        NonNull::new(paddr as usize as *mut u8)
            .expect("uk-virtio: virtio-drivers asked to map MMIO at physical address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        phys_of(buffer.as_ptr().cast::<u8>())
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Coherent DMA into the buffer itself: nothing to copy back or clean.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_pages_are_aligned_zeroed_and_identity() {
        let (paddr, vaddr) = UkHal::dma_alloc(3, BufferDirection::Both);
        assert_ne!(paddr, 0);
        assert_eq!(vaddr.as_ptr() as usize % PAGE_SIZE, 0);
        assert_eq!(paddr, vaddr.as_ptr() as u64);
        // SAFETY: `dma_alloc` returned 3 readable pages.
        let bytes = unsafe { core::slice::from_raw_parts(vaddr.as_ptr(), 3 * PAGE_SIZE) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: the values `dma_alloc` returned, freed once.
        assert_eq!(unsafe { UkHal::dma_dealloc(paddr, vaddr, 3) }, 0);
    }

    #[test]
    fn zero_or_absurd_sizes_fail_cleanly() {
        assert_eq!(UkHal::dma_alloc(0, BufferDirection::Both).0, 0);
        assert_eq!(UkHal::dma_alloc(usize::MAX, BufferDirection::Both).0, 0);
    }

    #[test]
    fn share_is_the_buffer_address() {
        let mut buffer = [0u8; 16];
        let ptr = NonNull::from(&mut buffer[..]);
        // SAFETY: a live local buffer, not otherwise accessed during the calls.
        let paddr = unsafe { UkHal::share(ptr, BufferDirection::DriverToDevice) };
        assert_eq!(paddr, buffer.as_ptr() as u64);
    }
}
