//! Transactions through libnftables in process, instead of an `nft` process per
//! transaction. The library is the one the `nft` binary itself links (`libnftables.so.1`,
//! Debian's `libnftables1`), loaded at run time so that Palisade builds and runs without it
//! (falling back to the binary).
//!
//! Why: on a node table of 10,000 elements, starting `nft` costs about 8 ms per
//! transaction and the library call 0.7 ms; an incremental update is up to three
//! transactions, so the process start-ups were most of an update's latency.
//!
//! Each call makes a fresh context: its netlink socket belongs to the network namespace of
//! the calling thread (as a spawned `nft` belongs to its parent's), and no cache outlives a
//! transaction (every transaction is computed from Palisade's own state, never from a
//! cached kernel view).

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};

use crate::apply::{ApplyError, Nft};

/// `NFT_CTX_DEFAULT`.
const CTX_DEFAULT: u32 = 0;
/// `NFT_CTX_OUTPUT_JSON`: with it, `nft_run_cmd_from_buffer` parses JSON input (as `-j`).
const OUTPUT_JSON: c_uint = 1 << 4;

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type SetFlags = unsafe extern "C" fn(*mut c_void, c_uint);
type SetDryRun = unsafe extern "C" fn(*mut c_void, bool);
type BufferError = unsafe extern "C" fn(*mut c_void) -> c_int;
type GetErrorBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The loaded library with the entry points Palisade uses (resolved once, at load).
pub struct Libnftables {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    output_set_flags: SetFlags,
    set_dry_run: SetDryRun,
    buffer_error: BufferError,
    get_error_buffer: GetErrorBuffer,
    run_cmd_from_buffer: RunCmd,
    // Last: the function pointers above are valid while the library stays loaded.
    _library: libloading::Library,
}

impl std::fmt::Debug for Libnftables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Libnftables")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot load libnftables.so.1: {0}")]
pub struct LoadError(#[from] libloading::Error);

impl Libnftables {
    /// Loads `libnftables.so.1` from the dynamic linker's search path.
    pub fn load() -> Result<Self, LoadError> {
        // SAFETY: loading the system's libnftables runs only its (side-effect-free)
        // initialisers; each symbol is given the C signature libnftables(3) documents for
        // the 1.x ABI (soname libnftables.so.1).
        unsafe {
            let library = libloading::Library::new("libnftables.so.1")?;
            Ok(Self {
                ctx_new: *library.get::<CtxNew>(b"nft_ctx_new\0")?,
                ctx_free: *library.get::<CtxFree>(b"nft_ctx_free\0")?,
                output_set_flags: *library.get::<SetFlags>(b"nft_ctx_output_set_flags\0")?,
                set_dry_run: *library.get::<SetDryRun>(b"nft_ctx_set_dry_run\0")?,
                buffer_error: *library.get::<BufferError>(b"nft_ctx_buffer_error\0")?,
                get_error_buffer: *library.get::<GetErrorBuffer>(b"nft_ctx_get_error_buffer\0")?,
                run_cmd_from_buffer: *library.get::<RunCmd>(b"nft_run_cmd_from_buffer\0")?,
                _library: library,
            })
        }
    }

    /// Runs one JSON document as one transaction (a dry run: checked, then aborted).
    fn run(&self, document: &str, dry_run: bool) -> Result<(), ApplyError> {
        let buffer = CString::new(document).map_err(|_| ApplyError::rejected("the document holds a NUL byte"))?;
        // SAFETY: the context is created, used and freed on this thread, within this call;
        // `buffer` outlives the run; the error buffer is copied out before the free.
        unsafe {
            let ctx = (self.ctx_new)(CTX_DEFAULT);
            if ctx.is_null() {
                return Err(ApplyError::Spawn { binary: "libnftables".into(), source: std::io::Error::other("nft_ctx_new failed") });
            }
            (self.output_set_flags)(ctx, OUTPUT_JSON);
            (self.set_dry_run)(ctx, dry_run);
            (self.buffer_error)(ctx);
            let status = (self.run_cmd_from_buffer)(ctx, buffer.as_ptr());
            let result = if status == 0 {
                Ok(())
            } else {
                let error = (self.get_error_buffer)(ctx);
                let message = if error.is_null() { String::new() } else { CStr::from_ptr(error).to_string_lossy().trim().to_string() };
                Err(ApplyError::rejected(message))
            };
            (self.ctx_free)(ctx);
            // libnftables allocates with the C library's malloc (tens of MB for a big
            // transaction's parse and cache) and glibc keeps freed memory mapped: given back
            // now, the agent's resident memory returns to what Palisade itself holds.
            #[cfg(target_env = "gnu")]
            libc::malloc_trim(0);
            result
        }
    }
}

impl Nft for Libnftables {
    fn apply(&self, document: &str) -> Result<(), ApplyError> {
        self.run(document, false)
    }

    // Each call's context and the netlink socket are both the calling thread's.
    fn supports_netlink(&self) -> bool {
        true
    }

    fn check(&self, document: &str) -> Result<(), ApplyError> {
        self.run(document, true)
    }
}

/// The nftables a node agent uses: libnftables in process when the library loads, the
/// `nft` binary otherwise.
#[derive(Debug)]
pub enum SystemNft {
    Library(Libnftables),
    Binary(crate::apply::NftBinary),
}

impl SystemNft {
    /// libnftables if it loads (logging why not otherwise), else `binary`.
    pub fn detect(binary: crate::apply::NftBinary) -> Self {
        match Libnftables::load() {
            Ok(library) => SystemNft::Library(library),
            Err(error) => {
                tracing::info!(%error, binary = %binary.binary, "applying through the nft binary");
                SystemNft::Binary(binary)
            }
        }
    }
}

impl Nft for SystemNft {
    fn describe(&self) -> String {
        match self {
            SystemNft::Library(_) => "libnftables.so.1 (in process)".to_string(),
            SystemNft::Binary(binary) => format!("{} (a process per transaction)", binary.binary),
        }
    }

    fn apply(&self, document: &str) -> Result<(), ApplyError> {
        match self {
            SystemNft::Library(library) => library.apply(document),
            SystemNft::Binary(binary) => binary.apply(document),
        }
    }

    fn check(&self, document: &str) -> Result<(), ApplyError> {
        match self {
            SystemNft::Library(library) => library.check(document),
            SystemNft::Binary(binary) => binary.check(document),
        }
    }

    fn supports_netlink(&self) -> bool {
        true
    }
}
