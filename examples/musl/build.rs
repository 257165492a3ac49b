//! Compiles `c/hello.c` against musl's headers with the target's GNU C compiler and links
//! musl's static C library into the image. Debian packages: `musl-dev` and `gcc` for
//! x86_64; `musl-dev:arm64` and `gcc-aarch64-linux-gnu` for aarch64. `MUSL_ROOT`
//! overrides where musl is looked for (`$MUSL_ROOT/include/<arch>-linux-musl` and
//! `$MUSL_ROOT/lib/<arch>-linux-musl`, Debian's layout under `/usr`), `MUSL_CC` the
//! compiler.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=c");
    println!("cargo:rerun-if-env-changed=MUSL_ROOT");
    println!("cargo:rerun-if-env-changed=MUSL_CC");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        // Host builds (lints, docs) do not link the image.
        return;
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    let root = PathBuf::from(std::env::var("MUSL_ROOT").unwrap_or_else(|_| "/usr".into()));
    let include = root.join("include").join(format!("{arch}-linux-musl"));
    let lib = root
        .join("lib")
        .join(format!("{arch}-linux-musl"))
        .join("libc.a");
    let compiler = std::env::var("MUSL_CC").unwrap_or_else(|_| match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu-gcc".into(),
        _ => format!("{arch}-linux-gnu-gcc"),
    });
    for path in [&include, &lib] {
        if !path.exists() {
            panic!(
                "{} is missing: this example needs musl for {arch} (Debian: musl-dev{}, \
                 or set MUSL_ROOT)",
                path.display(),
                if arch == "aarch64" { ":arm64" } else { "" }
            );
        }
    }
    // The compiler's own headers (stddef.h, stdarg.h) come after musl's.
    let own = Command::new(&compiler)
        .arg("-print-file-name=include")
        .output()
        .unwrap_or_else(|e| panic!("{compiler} is needed to build this example: {e}"));
    let own = String::from_utf8(own.stdout).unwrap();
    cc::Build::new()
        .compiler(&compiler)
        .file("c/hello.c")
        .flag("-nostdinc")
        .flag("-isystem")
        .flag(include.to_str().unwrap())
        .flag("-isystem")
        .flag(own.trim())
        .flag("-fPIE")
        // The image runs with the FPU and SIMD on but takes no red-zone or stack-probe
        // assumptions from the C code.
        .flag("-fno-stack-protector")
        .opt_level(2)
        .cargo_warnings(true)
        .compile("hello");
    println!("cargo:rustc-link-arg={}", lib.display());
}
