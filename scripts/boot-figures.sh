#!/usr/bin/env bash
# Measures the figures the README reports for the release helloworld image on each board:
# image size, in-guest time from the first instruction to main (median of 10 boots), and the
# whole QEMU run (hyperfine, median of 10). Run on an idle machine: TCG timings follow load.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }

cargo build -q --release -p helloworld --target x86_64-unknown-none
cargo build -q --release -p helloworld --target aarch64-unknown-none
target_dir=${CARGO_TARGET_DIR:-target}
x86=$target_dir/x86_64-unknown-none/release/helloworld
arm=$target_dir/aarch64-unknown-none/release/helloworld
common="-m 64M -nographic -nodefaults -serial stdio -no-reboot"
declare -A cmd=(
    [x86-pc/pc]="qemu-system-x86_64 -machine pc -cpu max $common -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel $x86"
    [x86-pc/microvm]="qemu-system-x86_64 -machine microvm -cpu max $common -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel $x86"
    [qemu-virt/cortex-a72]="qemu-system-aarch64 -machine virt -cpu cortex-a72 $common -semihosting-config enable=on,target=native -kernel $arm"
    [qemu-virt/max]="qemu-system-aarch64 -machine virt -cpu max $common -semihosting-config enable=on,target=native -kernel $arm"
)
json=$(mktemp)
trap 'rm -f "$json"' EXIT
printf 'image sizes: x86-pc %s B, qemu-virt %s B\n' "$(stat -c %s $x86)" "$(stat -c %s $arm)"
for config in x86-pc/pc x86-pc/microvm qemu-virt/cortex-a72 qemu-virt/max; do
    # QEMU exits non-zero on x86 (isa-debug-exit), so the loop status is ignored.
    boots=$(for _ in $(seq 10); do { ${cmd[$config]} </dev/null || true; } | sed -n 's/^first instruction to main: \([0-9.]*\) us.*/\1/p'; done | sort -n)
    median=$(echo "$boots" | sed -n '5p;6p' | awk '{s+=$1} END {printf "%.0f", s/2}')
    hyperfine -N --runs 10 --warmup 1 -i --export-json "$json" "${cmd[$config]}" >/dev/null 2>&1
    whole=$(python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$json")
    printf '%-22s first instruction to main: median %s us; whole QEMU run: median %s s\n' "$config" "$median" "$whole"
    printf '    %s\n' "${cmd[$config]}"
done
