//! Terminal output: colours only when the stream is a terminal and `NO_COLOR` is not set,
//! and the image's size by ELF section (`cargo uk build --size`).

use std::io::IsTerminal;
use std::path::Path;

/// A colour for [`paint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    /// Success.
    Green,
    /// Failure.
    Red,
    /// Warning, in between.
    Yellow,
    /// Headers and names.
    Bold,
    /// Less important text.
    Dim,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "32",
            Color::Red => "31",
            Color::Yellow => "33",
            Color::Bold => "1",
            Color::Dim => "2",
        }
    }
}

/// Whether colours are wanted, given whether the stream is a terminal and the value of
/// `NO_COLOR` (any non-empty value turns them off, <https://no-color.org>).
pub fn colors_wanted(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Whether standard output gets colours.
pub fn stdout_colors() -> bool {
    colors_wanted(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// Whether standard error gets colours (and progress bars).
pub fn stderr_colors() -> bool {
    colors_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// `text` in `color` when `enabled`, else `text` as it is.
pub fn paint(text: &str, color: Color, enabled: bool) -> String {
    if enabled {
        format!("\x1b[{}m{text}\x1b[0m", color.code())
    } else {
        text.to_owned()
    }
}

/// One section of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Section name.
    pub name: String,
    /// Load address.
    pub address: u64,
    /// Size in memory.
    pub size: u64,
    /// Whether it takes room in the file (not `.bss`-like).
    pub in_file: bool,
}

/// The allocated sections of an ELF image (those that take memory when it runs), in address
/// order.
pub fn elf_sections(data: &[u8]) -> Result<Vec<Section>, String> {
    use object::{Object, ObjectSection, SectionFlags, SectionKind};
    let file = object::File::parse(data).map_err(|e| format!("not an ELF image: {e}"))?;
    let mut sections: Vec<Section> = file
        .sections()
        .filter(|s| match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_ALLOC) != 0,
            _ => s.address() != 0,
        })
        .filter(|s| s.size() > 0)
        .map(|s| Section {
            name: s.name().unwrap_or("?").to_owned(),
            address: s.address(),
            size: s.size(),
            in_file: !matches!(
                s.kind(),
                SectionKind::UninitializedData | SectionKind::UninitializedTls
            ),
        })
        .collect();
    sections.sort_by_key(|s| s.address);
    Ok(sections)
}

/// Sizes in bytes as `12345 (12.1 KiB)`.
pub fn human(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

/// The `--size` table: section, address, size, share of the loaded size, then totals.
pub fn size_table(sections: &[Section], file_size: u64) -> String {
    let total: u64 = sections.iter().map(|s| s.size).sum();
    let in_file: u64 = sections.iter().filter(|s| s.in_file).map(|s| s.size).sum();
    let width = sections
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max("section".len());
    let mut out = format!(
        "{:<width$}  {:>18}  {:>10}  {:>6}\n",
        "section", "address", "size", "share"
    );
    for s in sections {
        let share = if total == 0 {
            0.0
        } else {
            s.size as f64 * 100.0 / total as f64
        };
        out.push_str(&format!(
            "{:<width$}  {:#018x}  {:>10}  {:>5.1}%\n",
            s.name, s.address, s.size, share
        ));
    }
    out.push_str(&format!(
        "loaded: {total} bytes ({}), of which in the file: {in_file} bytes; file: {file_size} bytes ({})\n",
        human(total),
        human(file_size)
    ));
    out
}

/// Prints the `--size` table of the image at `path`.
pub fn print_size(path: &Path) -> anyhow::Result<()> {
    let data =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let sections = elf_sections(&data).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    print!("{}", size_table(&sections, data.len() as u64));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_follow_the_terminal_and_no_color() {
        assert!(colors_wanted(true, None));
        assert!(!colors_wanted(false, None));
        assert!(!colors_wanted(true, Some("1".as_ref())));
        assert!(colors_wanted(true, Some("".as_ref())));
        assert_eq!(paint("ok", Color::Green, false), "ok");
        assert_eq!(paint("ok", Color::Green, true), "\x1b[32mok\x1b[0m");
    }

    #[test]
    fn sections_of_this_test_binary() {
        // The running test binary is an ELF file on Linux: it has .text.
        if !cfg!(target_os = "linux") {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(&exe).unwrap();
        let sections = elf_sections(&data).unwrap();
        assert!(sections.iter().any(|s| s.name == ".text" && s.in_file));
        assert!(sections.windows(2).all(|w| w[0].address <= w[1].address));
        assert!(
            !sections
                .iter()
                .any(|s| s.name == ".symtab" || s.name == ".comment")
        );
        let table = size_table(&sections, data.len() as u64);
        assert!(table.starts_with("section"));
        assert!(table.contains(".text"));
        assert!(elf_sections(b"not an elf").is_err());
    }

    #[test]
    fn table_totals() {
        let sections = [
            Section {
                name: ".text".into(),
                address: 0x100000,
                size: 300,
                in_file: true,
            },
            Section {
                name: ".bss".into(),
                address: 0x200000,
                size: 100,
                in_file: false,
            },
        ];
        let t = size_table(&sections, 5000);
        assert!(
            t.contains(".text    0x0000000000100000         300   75.0%"),
            "{t}"
        );
        assert!(
            t.contains(".bss     0x0000000000200000         100   25.0%"),
            "{t}"
        );
        assert!(
            t.ends_with(
                "loaded: 400 bytes (400 B), of which in the file: 300 bytes; file: 5000 bytes (4.9 KiB)\n"
            ),
            "{t}"
        );
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
