// tests/capi/rust_smoke.rs — the installed libviommu from Rust, as a
// rust-vmm-style VMM would call it, linked through `pkg-config --libs
// viommu` by tests/capi/install_test.sh, twice:
//  * with hand-written `extern "C"` declarations of a few viommu_*
//    functions and #[repr(C)] structs (module `sys` below);
//  * with `--cfg viommu_bindgen`, with what Debian's bindgen generates from
//    the installed <viommu.h> instead (VIOMMU_SYS_RS names the file at
//    compile time; the same file built with `--test` runs bindgen's layout
//    tests of every struct).
// It creates a context, adds 1 MiB of guest RAM, writes through an
// identity-mapped endpoint's DMA, reads it back, checks the bytes in RAM and
// in the read buffer, and the fault record of an unassigned IOVA. Exit 0
// only if all held.
use std::os::raw::{c_char, c_void};
use std::process::exit;
use std::ptr;

#[cfg(viommu_bindgen)]
#[allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code)]
mod sys {
    include!(env!("VIOMMU_SYS_RS"));
}

#[cfg(not(viommu_bindgen))]
#[allow(non_camel_case_types)]
mod sys {
    use std::os::raw::{c_char, c_int, c_void};

    pub type viommu_ctx = c_void;
    pub type viommu_ep = c_void;

    // The ABI 0.1 prefix of viommu_config (the library accepts it).
    #[repr(C)]
    #[derive(Default)]
    pub struct viommu_config {
        pub size: usize,
        pub flags: u32,
    }

    #[repr(C)]
    pub struct viommu_region {
        pub size: usize,
        pub kind: u32,
        pub flags: u32,
        pub gpa: u64,
        pub len: u64,
        pub hva: *mut c_void,
        pub fd: i32,
        pub reserved: u32,
        pub fd_offset: u64,
        pub read: Option<unsafe extern "C" fn(*mut c_void, u64, *mut u64, u32) -> c_int>,
        pub write: Option<unsafe extern "C" fn(*mut c_void, u64, u64, u32) -> c_int>,
        pub opaque: *mut c_void,
        pub name: *const c_char,
    }
    impl Default for viommu_region {
        fn default() -> Self {
            // All zero, as bindgen's Default: null pointers and no callbacks.
            unsafe { std::mem::zeroed() }
        }
    }

    #[repr(C)]
    #[derive(Default)]
    pub struct viommu_dma_fault {
        pub size: usize,
        pub iova: u64,
        pub sid: u32,
        pub reason: u32,
        pub flags: u32,
        pub segment: u16,
        pub reserved: u16,
    }

    pub const VIOMMU_REGION_RAM: u32 = 1;
    pub const VIOMMU_DMA_READ: u32 = 0;
    pub const VIOMMU_DMA_WRITE: u32 = 1;

    extern "C" {
        pub fn viommu_abi_version() -> u32;
        pub fn viommu_ctx_new(
            cfg: *const viommu_config,
            cb: *const c_void,
            opaque: *mut c_void,
            out: *mut *mut viommu_ctx,
        ) -> c_int;
        pub fn viommu_ctx_free(ctx: *mut viommu_ctx);
        pub fn viommu_region_add(
            ctx: *mut viommu_ctx,
            r: *const viommu_region,
            id: *mut u32,
        ) -> c_int;
        pub fn viommu_ep_new(
            ctx: *mut viommu_ctx,
            segment: u16,
            bus: u8,
            devfn: u8,
            iommu: *mut c_void,
            out: *mut *mut viommu_ep,
        ) -> c_int;
        pub fn viommu_ep_free(ep: *mut viommu_ep);
        pub fn viommu_dma_rw(
            ep: *mut viommu_ep,
            iova: u64,
            buf: *mut c_void,
            len: usize,
            flags: u32,
            fault: *mut viommu_dma_fault,
        ) -> i32;
    }
}

use sys::*;

fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("rust_smoke: FAIL: {}", what);
        exit(1);
    }
    println!("ok {}", what);
}

fn main() {
    let mut ram = vec![0u8; 1 << 20];
    unsafe {
        let v = viommu_abi_version();
        check(v >> 16 == 0 && (v & 0xffff) >= 2, "viommu_abi_version is 0.2 or later");

        let cfg = viommu_config { size: std::mem::size_of::<viommu_config>(), ..Default::default() };
        let mut ctx: *mut viommu_ctx = ptr::null_mut();
        check(
            viommu_ctx_new(&cfg, ptr::null(), ptr::null_mut(), &mut ctx) == 0 && !ctx.is_null(),
            "viommu_ctx_new",
        );

        let region = viommu_region {
            size: std::mem::size_of::<viommu_region>(),
            kind: VIOMMU_REGION_RAM,
            gpa: 0,
            len: ram.len() as u64,
            hva: ram.as_mut_ptr() as *mut c_void,
            fd: -1,
            name: b"rust-ram\0".as_ptr() as *const c_char,
            ..Default::default()
        };
        let mut id = 0u32;
        check(viommu_region_add(ctx, &region, &mut id) == 0 && id != 0, "viommu_region_add RAM");

        let mut ep: *mut viommu_ep = ptr::null_mut();
        check(
            viommu_ep_new(ctx, 0, 0, 0x18, ptr::null_mut(), &mut ep) == 0 && !ep.is_null(),
            "viommu_ep_new 0000:00:03.0, identity",
        );

        let mut out: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7).wrapping_add(1)).collect();
        let mut fault = viommu_dma_fault {
            size: std::mem::size_of::<viommu_dma_fault>(),
            ..Default::default()
        };
        let r = viommu_dma_rw(
            ep,
            0x1234,
            out.as_mut_ptr() as *mut c_void,
            out.len(),
            VIOMMU_DMA_WRITE,
            &mut fault,
        );
        check(r == 0, "viommu_dma_rw write 64 bytes at IOVA 0x1234");
        check(&ram[0x1234..0x1234 + 64] == &out[..], "the bytes landed at GPA 0x1234");

        let mut back = vec![0u8; 64];
        let r = viommu_dma_rw(
            ep,
            0x1234,
            back.as_mut_ptr() as *mut c_void,
            back.len(),
            VIOMMU_DMA_READ,
            &mut fault,
        );
        check(r == 0 && back == out, "viommu_dma_rw read them back");

        let r = viommu_dma_rw(
            ep,
            0x4000_0000,
            back.as_mut_ptr() as *mut c_void,
            4,
            VIOMMU_DMA_READ,
            &mut fault,
        );
        check(r == -14 && fault.iova == 0x4000_0000 && fault.sid == 0x18,
              "unassigned IOVA is -EFAULT with a fault record");

        viommu_ep_free(ep);
        viommu_ctx_free(ctx);
    }
    println!("rust_smoke: all checks passed");
}
