#!/usr/bin/python3
"""libtorrent 2.0 reference for shoal's interop tests.

  lt_torrent.py create PATH PIECE_LENGTH OUT [v2|hybrid|v1|v1pad]
      Make a torrent of PATH with libtorrent, write it to OUT and print its
      v2 info-hash (64 hex) on stdout, or for v1 and v1pad its v1 info-hash
      (40 hex). A v1 folder lists its files sorted by path, as shoal does
      (libtorrent sorts only v2 and hybrid file lists); files are laid end
      to end, so pieces cross file boundaries. hybrid aligns every file to
      a piece with BEP 47 pad files, and so does v1pad in a v1-only torrent
      (libtorrent's canonical_files).
  lt_torrent.py hash FILE.torrent
      Print the v2 info-hash libtorrent reads from an existing torrent.
  lt_torrent.py hashes FILE.torrent
      Print both info-hashes libtorrent reads, v2 then v1, each "-" when
      the torrent has none.

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
    if kind == "v1" and os.path.isdir(path):
        base = os.path.dirname(os.path.abspath(path))
        found = []
        for d, _, names in os.walk(path):
            for n in names:
                full = os.path.join(d, n)
                found.append(os.path.relpath(full, base).split(os.sep))
        for parts in sorted(found, key=lambda p: [c.encode() for c in p]):
            rel = os.path.join(*parts)
            fs.add_file(rel, os.path.getsize(os.path.join(base, rel)))
    else:
        lt.add_files(fs, path)
    flags = {
        "v2": lt.create_torrent.v2_only,
        "hybrid": 0,
        "v1": lt.create_torrent.v1_only,
        "v1pad": lt.create_torrent.v1_only | lt.create_torrent.canonical_files,
    }.get(kind)
    if flags is None:
        sys.exit("unknown torrent kind " + kind)
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
        if kind in ("v1", "v1pad"):
            print(ti.info_hashes().v1.to_bytes().hex())
            return
    elif cmd == "hash":
        ti = lt.torrent_info(sys.argv[2])
    elif cmd == "hashes":
        ih = lt.torrent_info(sys.argv[2]).info_hashes()
        v2 = ih.v2.to_bytes().hex() if ih.has_v2() else "-"
        v1 = ih.v1.to_bytes().hex() if ih.has_v1() else "-"
        print(v2, v1)
        return
    else:
        sys.exit("unknown command " + cmd)
    print(ti.info_hashes().v2.to_bytes().hex())


if __name__ == "__main__":
    main()
