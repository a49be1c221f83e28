#!/usr/bin/python3
"""Which .torrent files libtorrent 2.0 accepts, for shoal's parser tests.

  lt_accepts.py FILE...
      For each FILE print one line: "ok V2HASH V1HASH" (hex, "-" for a hash
      the torrent lacks) when lt.torrent_info reads it, or "error: WHY".
  lt_accepts.py --magnet URI...
      The same for magnet links read by lt.parse_magnet_uri; a link it
      reads to no hash at all (an all-zero or non-hex btih) is an error,
      as no swarm can be found with it.

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


def magnet_verdict(uri):
    try:
        ih = lt.parse_magnet_uri(uri).info_hashes
    except Exception as e:
        return "error: " + str(e).replace("\n", " ")
    if not ih.has_v1() and not ih.has_v2():
        return "error: no info-hash"
    v2 = ih.v2.to_bytes().hex() if ih.has_v2() else "-"
    v1 = ih.v1.to_bytes().hex() if ih.has_v1() else "-"
    return "ok %s %s" % (v2, v1)


def main():
    if sys.argv[1:2] == ["--magnet"]:
        for uri in sys.argv[2:]:
            print(magnet_verdict(uri))
        return
    for path in sys.argv[1:]:
        print(verdict(path))


if __name__ == "__main__":
    main()
