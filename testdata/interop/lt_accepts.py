#!/usr/bin/python3
"""Which .torrent files libtorrent 2.0 accepts, for shoal's parser tests.

  lt_accepts.py FILE...
      For each FILE print one line: "ok V2HASH V1HASH" (hex, "-" for a hash
      the torrent lacks) when lt.torrent_info reads it, or "error: WHY".

Run it with /usr/bin/python3: Debian's python3-libtorrent is importable only
by the system interpreter.
"""
import sys

import libtorrent as lt


def verdict(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        ti = lt.torrent_info(data)
    except Exception as e:  # libtorrent raises RuntimeError with its reason
        return "error: " + str(e).replace("\n", " ")
    ih = ti.info_hashes()
    v2 = ih.v2.to_bytes().hex() if ih.has_v2() else "-"
    v1 = ih.v1.to_bytes().hex() if ih.has_v1() else "-"
    return "ok %s %s" % (v2, v1)


def main():
    for path in sys.argv[1:]:
        print(verdict(path))


if __name__ == "__main__":
    main()
