//! Builds musl with its system calls as direct calls (`uk-musl`), compiles `c/hello.c`
//! and the C library test suite (`c/suite*.c`) against it and links both into the image. Needs the architecture's GNU C compiler
//! (Debian: `gcc`, `gcc-aarch64-linux-gnu`), `make` and, unless `MUSL_SRC` names a local
//! musl 1.2.3 tree or tarball, `curl` (see uk-musl's documentation for every setting).

fn main() {
    println!("cargo:rerun-if-changed=c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        // Host builds (lints, docs) do not link the image.
        return;
    }
    let musl = uk_musl::Builder::from_cargo_env()
        .and_then(|builder| builder.build())
        .unwrap_or_else(|e| panic!("{e}"));
    musl.cc()
        .files([
            "c/hello.c",
            "c/suite.c",
            "c/suite_sys.c",
            "c/suite_threads.c",
            "c/suite_usage.c",
            "c/suite_mutex.c",
            "c/suite_mmap.c",
            "c/suite_rights.c",
            "c/suite_segv.c",
            "c/suite_traps.c",
            "c/suite_futex.c",
            "c/suite_wait.c",
            "c/suite_proc.c",
            "c/suite_async.c",
            "c/suite_preempt.c",
            "c/suite_fenv.c",
        ])
        .compile("hello");
    musl.link();
}
