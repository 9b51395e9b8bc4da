//! The global allocator, and how long it keeps freed memory before giving it back.
//!
//! Decoding allocates every string of every span, and the spans live until their block is
//! written, when they are freed all at once. mimalloc takes about a quarter off the cost of the
//! ingest path (docs/benchmarks.md). By default it returns freed pages to the system after
//! 10 ms, so the next requests' spans fault the same pages in afresh, zeroed by the kernel: a
//! sixth of the server's CPU under load was that kernel work. Kept for a few seconds (longer
//! than a block takes to fill), freed pages are reused instead; memory still goes back to the
//! system once the load stops.
//!
//! C code (zstd, which the Parquet writer calls for every column of every row group) allocates
//! through glibc's malloc instead. Its compression contexts (a few MiB each) were above
//! glibc's mmap threshold, so each was a fresh mapping, faulted in page by page and unmapped
//! again: about a third of the server's page faults under load. Such sizes now come from the
//! heap and stay there for the next row group (`docs/benchmarks.md`).
//!
//! Transparent huge pages are off for the process: mimalloc asks for them on its arenas, and
//! each first touch of a 2 MiB range then faulted in and zeroed all of it at once. Measured
//! at a fixed offered rate: 10-14% more spans per CPU-second, a third less kernel time, a
//! lower acknowledgment p99 and about 100 MiB less peak memory (docs/benchmarks.md).

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (milliseconds before freed memory goes back to the
/// system), which libmimalloc-sys does not name. `tests::purge_delay_is_the_option_of_its_
/// environment_variable` checks the number.
const PURGE_DELAY: mi_option_t = 15;
/// The environment variable mimalloc reads the same option from; when set, it wins.
const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";
/// Measured: 5 s gave 7% more spans per CPU-second than mimalloc's 10 ms (docs/benchmarks.md).
const PURGE_DELAY_MS: std::ffi::c_long = 5_000;

/// The environment variable mimalloc reads its own huge-page setting from; when set, the
/// process's huge pages are left to it.
const ALLOW_THP_ENV: &str = "MIMALLOC_ALLOW_THP";

/// glibc's malloc: allocations up to this size come from the heap rather than a mapping of
/// their own (its largest allowed value).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: std::ffi::c_int = 32 << 20;
/// glibc's malloc: free memory at the top of the heap is given back past this size only.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: std::ffi::c_int = 256 << 20;

/// Whether the environment sets glibc's malloc thresholds itself; then they are left to it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_malloc_set_by_environment() -> bool {
    ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."))
}

/// Sets the allocator's options; call first thing in `main`, before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !glibc_malloc_set_by_environment() {
        // SAFETY: mallopt takes plain integers and only stores them; a value it refuses
        // leaves the default.
        #[allow(unsafe_code, reason = "glibc's malloc options are only reachable through FFI")]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
    if std::env::var_os(ALLOW_THP_ENV).is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only a flag of this
        // process; an error (a kernel without it) leaves huge pages as they were.
        #[allow(unsafe_code, reason = "prctl is only reachable through FFI")]
        let _unsupported = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        // SAFETY: mi_option_set only stores the value; it is called before any other thread
        // exists (mimalloc documents it as not thread-safe).
        #[allow(unsafe_code, reason = "the one allocator option mimalloc only takes through FFI")]
        unsafe {
            mi_option_set(PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The allocator's purge delay now, in milliseconds.
    fn purge_delay_ms() -> std::ffi::c_long {
        // SAFETY: mi_option_get only reads the option.
        #[allow(
            unsafe_code,
            reason = "reading an allocator option mimalloc only gives through FFI"
        )]
        unsafe {
            mi_option_get(PURGE_DELAY)
        }
    }

    /// In a child process started with the environment variable, option number `PURGE_DELAY`
    /// holds the value given: the number names the option meant.
    #[test]
    fn purge_delay_is_the_option_of_its_environment_variable() {
        const CHILD: &str = "THREADLINE_ALLOC_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            println!("purge_delay={}", purge_delay_ms());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "alloc::tests::purge_delay_is_the_option_of_its_environment_variable",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env(PURGE_DELAY_ENV, "1234")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {stdout}");
        assert!(stdout.contains("purge_delay=1234"), "child said: {stdout}");
    }

    #[test]
    fn tune_turns_huge_pages_off_unless_the_environment_sets_them() {
        tune();
        // SAFETY: PR_GET_THP_DISABLE only reads this process's flag.
        #[allow(unsafe_code, reason = "prctl is only reachable through FFI")]
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        if std::env::var_os(ALLOW_THP_ENV).is_none() {
            assert_eq!(disabled, 1, "huge pages are still on");
        }
    }

    /// After `tune`, a C allocation of a zstd context's size comes from the heap, not from a
    /// mapping of its own.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn tune_keeps_c_allocations_of_a_few_mib_on_the_heap() {
        if glibc_malloc_set_by_environment() {
            return;
        }
        tune();
        // SAFETY: mallinfo2 only reads malloc's counters; the block is freed right after.
        #[allow(unsafe_code, reason = "glibc's malloc is only reachable through FFI")]
        let (before, during) = unsafe {
            let before = libc::mallinfo2().hblks;
            let block = libc::malloc(16 << 20);
            assert!(!block.is_null());
            let during = libc::mallinfo2().hblks;
            libc::free(block);
            (before, during)
        };
        assert_eq!(during, before, "a 16 MiB allocation got a mapping of its own");
    }

    #[test]
    fn tune_sets_the_purge_delay_unless_the_environment_does() {
        tune();
        let expected = std::env::var(PURGE_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(PURGE_DELAY_MS);
        assert_eq!(purge_delay_ms(), expected);
    }
}
