#!/usr/bin/python3
"""libtorrent 2.0 reference for shoal's interop tests.

  lt_torrent.py create PATH PIECE_LENGTH OUT [v2|hybrid]
      Make a torrent of PATH with libtorrent, write it to OUT and print its
      v2 info-hash (64 hex) on stdout.
  lt_torrent.py hash FILE.torrent
      Print the v2 info-hash libtorrent reads from an existing torrent.

Run it with /usr/bin/python3: Debian's python3-libtorrent is importable only
by the system interpreter.
"""
import os
import sys

import libtorrent as lt


def create(path, piece_length, out, kind):
    fs = lt.file_storage()
    # Keep file attributes (executable, hidden) out of the comparison: shoal
    # records none, and the test files carry none.
    lt.add_files(fs, path)
    flags = lt.create_torrent.v2_only if kind == "v2" else 0
    ct = lt.create_torrent(fs, piece_length, flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    data = lt.bencode(ct.generate())
    with open(out, "wb") as f:
        f.write(data)
    return lt.torrent_info(out)


def main():
    cmd = sys.argv[1]
    if cmd == "create":
        kind = sys.argv[5] if len(sys.argv) > 5 else "v2"
        ti = create(sys.argv[2], int(sys.argv[3]), sys.argv[4], kind)
    elif cmd == "hash":
        ti = lt.torrent_info(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)
    print(ti.info_hashes().v2.to_bytes().hex())


if __name__ == "__main__":
    main()
