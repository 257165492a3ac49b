#!/usr/bin/env python3
"""Packs a directory into a newc CPIO archive (what `find DIR | cpio -o -H newc` makes),
for running the `files` example without cargo-uk:  mkinitrd.py rootfs out.cpio"""
import os
import sys


def entry(out, ino, name, st, data):
    fields = [ino, st.st_mode, 0, 0, st.st_nlink if not os.path.isdir(name) else 2,
              int(st.st_mtime), len(data), 0, 0, 0, 0, len(name) + 1, 0]
    out += b"070701" + b"".join(b"%08x" % f for f in fields)
    out += name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)


def main():
    root, dest = sys.argv[1], sys.argv[2]
    out = bytearray()
    ino = 1
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [dirpath] + [os.path.join(dirpath, f) for f in sorted(filenames)]:
            rel = os.path.relpath(name, root)
            st = os.lstat(name)
            if os.path.islink(name):
                data = os.readlink(name).encode()
            elif os.path.isfile(name):
                data = open(name, "rb").read()
            else:
                data = b""
            entry(out, ino, rel, st, data)
            ino += 1
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                name = os.path.join(dirpath, d)
                entry(out, ino, os.path.relpath(name, root), os.lstat(name),
                      os.readlink(name).encode())
                ino += 1
    entry(out, 0, "TRAILER!!!", os.stat_result((0,) * 10), b"")
    open(dest, "wb").write(out)


if __name__ == "__main__":
    main()
