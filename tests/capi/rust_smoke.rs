// tests/capi/rust_smoke.rs — the installed libviommu from Rust, as a
// rust-vmm-style VMM would call it: hand-written `extern "C"` declarations
// of a few viommu_* functions and #[repr(C)] structs (what bindgen would
// emit from <viommu.h>), linked through `pkg-config --libs viommu` by
// tests/capi/install_test.sh. It creates a context, adds 1 MiB of guest
// RAM, writes through an identity-mapped endpoint's DMA, reads it back, and
// checks the bytes in RAM and in the read buffer. Exit 0 only if all held.
use std::os::raw::{c_char, c_int, c_void};
use std::process::exit;
use std::ptr;

#[allow(non_camel_case_types)]
type viommu_ctx = c_void;
#[allow(non_camel_case_types)]
type viommu_ep = c_void;

#[repr(C)]
struct ViommuConfig {
    size: usize,
    flags: u32,
}

#[repr(C)]
struct ViommuRegion {
    size: usize,
    kind: u32,
    flags: u32,
    gpa: u64,
    len: u64,
    hva: *mut c_void,
    fd: i32,
    reserved: u32,
    fd_offset: u64,
    read: Option<extern "C" fn(*mut c_void, u64, *mut u64, u32) -> c_int>,
    write: Option<extern "C" fn(*mut c_void, u64, u64, u32) -> c_int>,
    opaque: *mut c_void,
    name: *const c_char,
}

#[repr(C)]
#[derive(Default)]
struct ViommuDmaFault {
    size: usize,
    iova: u64,
    sid: u32,
    reason: u32,
    flags: u32,
    segment: u16,
    reserved: u16,
}

const VIOMMU_REGION_RAM: u32 = 1;
const VIOMMU_DMA_READ: u32 = 0;
const VIOMMU_DMA_WRITE: u32 = 1;

extern "C" {
    fn viommu_abi_version() -> u32;
    fn viommu_ctx_new(
        cfg: *const ViommuConfig,
        cb: *const c_void,
        opaque: *mut c_void,
        out: *mut *mut viommu_ctx,
    ) -> c_int;
    fn viommu_ctx_free(ctx: *mut viommu_ctx);
    fn viommu_region_add(ctx: *mut viommu_ctx, r: *const ViommuRegion, id: *mut u32) -> c_int;
    fn viommu_ep_new(
        ctx: *mut viommu_ctx,
        segment: u16,
        bus: u8,
        devfn: u8,
        iommu: *mut c_void,
        out: *mut *mut viommu_ep,
    ) -> c_int;
    fn viommu_ep_free(ep: *mut viommu_ep);
    fn viommu_dma_rw(
        ep: *mut viommu_ep,
        iova: u64,
        buf: *mut c_void,
        len: usize,
        flags: u32,
        fault: *mut ViommuDmaFault,
    ) -> c_int;
}

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

        let cfg = ViommuConfig { size: std::mem::size_of::<ViommuConfig>(), flags: 0 };
        let mut ctx: *mut viommu_ctx = ptr::null_mut();
        check(
            viommu_ctx_new(&cfg, ptr::null(), ptr::null_mut(), &mut ctx) == 0 && !ctx.is_null(),
            "viommu_ctx_new",
        );

        let region = ViommuRegion {
            size: std::mem::size_of::<ViommuRegion>(),
            kind: VIOMMU_REGION_RAM,
            flags: 0,
            gpa: 0,
            len: ram.len() as u64,
            hva: ram.as_mut_ptr() as *mut c_void,
            fd: -1,
            reserved: 0,
            fd_offset: 0,
            read: None,
            write: None,
            opaque: ptr::null_mut(),
            name: b"rust-ram\0".as_ptr() as *const c_char,
        };
        let mut id = 0u32;
        check(viommu_region_add(ctx, &region, &mut id) == 0 && id != 0, "viommu_region_add RAM");

        let mut ep: *mut viommu_ep = ptr::null_mut();
        check(
            viommu_ep_new(ctx, 0, 0, 0x18, ptr::null_mut(), &mut ep) == 0 && !ep.is_null(),
            "viommu_ep_new 0000:00:03.0, identity",
        );

        let mut out: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7).wrapping_add(1)).collect();
        let mut fault = ViommuDmaFault {
            size: std::mem::size_of::<ViommuDmaFault>(),
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
