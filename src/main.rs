//! The `strand` binary: parses the command line and hands off to [`strand::cli`].
#![forbid(unsafe_code)]

// mimalloc instead of glibc's malloc: under load a store replica spent about a third of its
// CPU in glibc's malloc/free (perf, `strand bench store --clients 64`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    strand::cli::main()
}
