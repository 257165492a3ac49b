//! A host folder in the unikernel: `cargo uk` shares `shared/` (next to this example's
//! `Cargo.toml`) with the guest over virtio-9p, mount tag `share`; uk-virtio finds the
//! device (PCI on x86 `pc`, virtio-mmio on `virt`), uk-9pfs mounts it at `/host`, and
//! `main` lists it, reads a file, writes one larger than a 9P message, reads it back,
//! renames it and removes it again, so the folder ends as it began. With `-- root` the
//! folder is the root of the image's VFS instead (devfs on its `/dev`, which is made there
//! if missing).
//!
//! ```text
//! cargo uk run -p share                       # x86-pc, on shared/ itself
//! cargo uk run -p share --board qemu-virt     # aarch64
//! cargo uk run -p share --share /some/dir     # any other host directory
//! cargo uk run -p share -- root               # the folder as the root filesystem
//! ```
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use uk_9pfs::NinePFs;
use uk_vfs::global::vfs;
use uk_vfs::{Errno, O_DIRECTORY, O_RDONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};

uk_app::main!(main);

/// The mount tag cargo-uk gives the shared directory.
const TAG: &str = "share";

fn say(line: &str) {
    uk_app::println!("share: {line}");
}

/// The names in `dir` (without `.` and `..`), sorted, through `getdents64`.
fn names(dir: &str) -> Result<Vec<String>, Errno> {
    let fd = vfs().open(dir, O_RDONLY | O_DIRECTORY, 0)?;
    let mut buf = [0u8; 512];
    let mut out = Vec::new();
    loop {
        let n = vfs().getdents64(fd, &mut buf)?;
        if n == 0 {
            break;
        }
        for d in uk_vfs::dirents(&buf[..n]) {
            if d.name != b"." && d.name != b".." {
                out.push(String::from_utf8_lossy(d.name).into_owned());
            }
        }
    }
    vfs().close(fd)?;
    out.sort();
    Ok(out)
}

/// Prints every entry under `dir`: `d PATH`, `f PATH SIZE` or `l PATH -> TARGET`.
/// `name` in the directory `dir` (which may be `/`).
fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn walk(dir: &str) -> Result<(), Errno> {
    for name in names(dir)? {
        let path = join(dir, &name);
        if path == "/dev" {
            // devfs, mounted over the shared folder's /dev when it is the root.
            continue;
        }
        let st = vfs().lstat(&path)?;
        match st.mode & S_IFMT {
            S_IFDIR => {
                say(&format!("d {path}"));
                walk(&path)?;
            }
            S_IFREG => say(&format!("f {path} {}", st.size)),
            S_IFLNK => {
                let mut target = [0u8; 256];
                let n = vfs().readlink(&path, &mut target)?;
                say(&format!(
                    "l {path} -> {}",
                    String::from_utf8_lossy(&target[..n])
                ));
            }
            _ => say(&format!("? {path}")),
        }
    }
    Ok(())
}

fn main(args: &uk_app::Args) -> Result<(), Errno> {
    let platform = uk_app::platform();
    let transport = match uk_virtio::find_9p(platform, Some(TAG)) {
        Ok(t) => t,
        Err(e) => {
            say(&format!(
                "no shared directory ({e}); boot with `cargo uk run -p share`"
            ));
            return Err(Errno::ENODEV);
        }
    };
    let location = format!("{}", transport.location());
    let fs = NinePFs::mount(transport, b"")?;
    let msize = fs.msize();
    // `-- root`: the shared folder is the root of the image's VFS (Unikraft's root on
    // 9pfs; devfs goes on its /dev, made there if missing); else it is mounted at /host.
    let base = if args.iter().any(|a| *a == "root") {
        uk_vfs::global::init_root(fs)?;
        say(&format!("root is tag {TAG} ({location}), msize {msize}"));
        "/"
    } else {
        vfs().mkdir("/host", 0o755)?;
        vfs().mount("/host", fs)?;
        say(&format!(
            "mounted tag {TAG} ({location}) at /host, msize {msize}"
        ));
        "/host"
    };
    let at = |name: &str| join(base, name);

    walk(base)?;
    let greeting = vfs().read_file(at("greeting.txt"))?;
    say(&format!(
        "{} says: {}",
        at("greeting.txt"),
        String::from_utf8_lossy(&greeting).trim_end()
    ));

    // Larger than one 9P message (64 KiB), so both directions take several.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let t = platform.monotonic_ns();
    vfs().write_file(at("from-guest.bin"), &data, 0o644)?;
    let wrote = platform.monotonic_ns() - t;
    let t = platform.monotonic_ns();
    let back = vfs().read_file(at("from-guest.bin"))?;
    let read = platform.monotonic_ns() - t;
    say(&format!(
        "wrote {} ({} bytes, {} us), read back {} bytes ({} us), same: {}",
        at("from-guest.bin"),
        data.len(),
        wrote / 1000,
        back.len(),
        read / 1000,
        if back == data { "yes" } else { "NO" }
    ));

    vfs().rename(at("from-guest.bin"), at("notes/three.bin"))?;
    say(&format!(
        "renamed it to {}; notes: {}",
        at("notes/three.bin"),
        names(&at("notes"))?.join(" ")
    ));
    vfs().unlink(at("notes/three.bin"))?;
    let missing = vfs().stat(at("notes/three.bin")).err();
    say(&format!(
        "removed it (stat: {}); {}: {}",
        missing.map_or_else(|| String::from("still there"), |e| format!("{e:?}")),
        base,
        names(base)?.join(" ")
    ));
    say("done");
    Ok(())
}
