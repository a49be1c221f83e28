#!/usr/bin/python3
"""A v1-only BitTorrent peer (BEP 3 and nothing else) for shoal's interop tests.

Debian's v1-only clients cannot join a hybrid swarm (transmission-cli 3.00
refuses hybrid metadata; aria2c 1.36 computes a wrong v1 info-hash for it),
so the hybrid-swarm test uses this peer as the client that knows nothing of
v2: it reads only the v1 half of a torrent (`pieces`, `files`/`length`),
handshakes with the SHA-1 info-hash and all reserved bits zero (no fast
extension, no extension protocol, no v2 upgrade bit), and checks pieces by
SHA-1 only. Like a client that predates BEP 47 it requests pad files' bytes
too (and checks they are zeros), but it never writes them to disk.
Standard library only; independent of shoal's code.

  v1_peer.py seed TORRENT_FILE DATA_DIR [--port N]
      Serve the torrent whose data is at DATA_DIR/<name> (pad files are
      served as zeros) to every peer that handshakes with its v1 hash.
      stdout: listening: 127.0.0.1:PORT
              info-hash-v1: <40 hex>
              seeding
      stderr: "v1_peer: peer <first 8 bytes of its peer id> connected" for
              each peer that handshakes.
  v1_peer.py get TORRENT_FILE SAVE_DIR --peer HOST:PORT [--timeout SECONDS]
      Download every piece from the one peer (retrying the connection until
      the timeout), check each by SHA-1, write the files to SAVE_DIR/<name>.
      stdout: done: <bytes>
      Exit 0 when complete, 1 on timeout or error (reason on stderr).

Serves until SIGTERM/SIGINT, or until stdin reaches EOF when it is a pipe.
"""
import argparse
import hashlib
import os
import socket
import stat
import struct
import sys
import threading
import time

BLOCK = 16 * 1024
PROTO = b"\x13BitTorrent protocol"


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write("v1_peer: %s\n" % msg)
    sys.stderr.flush()


def bdecode(data, i=0):
    """Decode one value at i; return (value, end). Dicts keep their keys'
    raw byte spans in a side table so the info dict's bytes can be hashed."""
    c = data[i:i + 1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1:j]), j + 1
    if c == b"l":
        i += 1
        lst = []
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            lst.append(v)
        return lst, i + 1
    if c == b"d":
        i += 1
        d = {}
        while data[i:i + 1] != b"e":
            k, i = bdecode(data, i)
            start = i
            v, i = bdecode(data, i)
            d[k] = v
            d[(b"__span__", k)] = (start, i)
        return d, i + 1
    j = data.index(b":", i)
    n = int(data[i:j])
    return data[j + 1:j + 1 + n], j + 1 + n


class Torrent:
    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        top, _ = bdecode(raw)
        a, b = top[(b"__span__", b"info")]
        self.hash = hashlib.sha1(raw[a:b]).digest()
        info = top[b"info"]
        if b"pieces" not in info:
            raise SystemExit("not a v1 torrent: no pieces")
        self.name = info[b"name"].decode()
        self.piece_length = info[b"piece length"]
        p = info[b"pieces"]
        self.hashes = [p[k:k + 20] for k in range(0, len(p), 20)]
        # (path components or None for a pad file, length), laid end to end.
        self.files = []
        if b"files" in info:
            for f in info[b"files"]:
                pad = b"p" in f.get(b"attr", b"")
                comps = [c.decode() for c in f[b"path"]]
                self.files.append((None if pad else comps, f[b"length"]))
            self.multi = True
        else:
            self.files.append(([], info[b"length"]))
            self.multi = False
        self.total = sum(n for _, n in self.files)
        if (self.total + self.piece_length - 1) // self.piece_length != len(self.hashes):
            raise SystemExit("pieces do not cover the files")

    def piece_size(self, p):
        return min(self.piece_length, self.total - p * self.piece_length)

    def path(self, root, comps):
        return os.path.join(root, self.name, *comps) if self.multi else os.path.join(root, self.name)

    def spans(self, off, n):
        """Yield (components or None, offset in file, length) for [off, off+n)."""
        pos = 0
        for comps, length in self.files:
            if n == 0:
                return
            if off < pos + length:
                k = min(n, pos + length - off)
                yield comps, off - pos, k
                off += k
                n -= k
            pos += length


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise ConnectionError("peer closed the connection")
        buf += b
    return bytes(buf)


def read_msg(s):
    n = struct.unpack(">I", recv_exact(s, 4))[0]
    if n == 0:
        return None, b""
    body = recv_exact(s, n)
    return body[0], body[1:]


def send_msg(s, mid, payload=b""):
    s.sendall(struct.pack(">IB", 1 + len(payload), mid) + payload)


def handshake(s, t, peer_id, initiator):
    mine = PROTO + b"\0" * 8 + t.hash + peer_id
    if initiator:
        s.sendall(mine)
    theirs = recv_exact(s, 68)
    if theirs[:20] != PROTO:
        raise ConnectionError("not a BitTorrent handshake")
    if theirs[28:48] != t.hash:
        raise ConnectionError("handshake for another torrent: " + theirs[28:48].hex())
    if not initiator:
        s.sendall(mine)
    return theirs[48:68]


def serve_conn(s, t, root, peer_id):
    try:
        theirs = handshake(s, t, peer_id, initiator=False)
        # Tests read who came: their client prefix, e.g. -SH0100-.
        log("peer %s connected" % theirs[:8].decode("latin-1"))
        bits = bytearray((len(t.hashes) + 7) // 8)
        for p in range(len(t.hashes)):
            bits[p // 8] |= 0x80 >> (p % 8)
        send_msg(s, 5, bytes(bits))
        while True:
            mid, payload = read_msg(s)
            if mid == 2:  # interested
                send_msg(s, 1)
            elif mid == 6:  # request
                p, begin, n = struct.unpack(">III", payload)
                if p >= len(t.hashes) or n > 128 * 1024 or begin + n > t.piece_size(p):
                    raise ConnectionError("bad request %d %d %d" % (p, begin, n))
                data = bytearray()
                for comps, off, k in t.spans(p * t.piece_length + begin, n):
                    if comps is None:
                        data += b"\0" * k
                    else:
                        with open(t.path(root, comps), "rb") as f:
                            f.seek(off)
                            data += f.read(k)
                send_msg(s, 7, struct.pack(">II", p, begin) + bytes(data))
    except (ConnectionError, OSError) as e:
        log("peer: %s" % e)
    finally:
        s.close()


def cmd_seed(args, stop):
    t = Torrent(args.torrent)
    root = os.path.abspath(args.data_dir)
    for comps, length in t.files:
        if comps is not None and os.path.getsize(t.path(root, comps)) != length:
            raise SystemExit("data incomplete: " + t.path(root, comps))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(16)
    ls.settimeout(0.2)
    out("listening: 127.0.0.1:%d" % ls.getsockname()[1])
    out("info-hash-v1: " + t.hash.hex())
    out("seeding")
    peer_id = b"-V10001-" + os.urandom(12)
    while not stop.is_set():
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        c.settimeout(None)
        threading.Thread(target=serve_conn, args=(c, t, root, peer_id), daemon=True).start()


def download(t, root, peer, deadline, done):
    """One connection's worth of downloading; returns when every piece is
    done (done[p] persists across connections)."""
    s = socket.create_connection(peer, timeout=5)
    s.settimeout(max(1, deadline - time.time()))
    handshake(s, t, b"-V10001-" + os.urandom(12), initiator=True)
    n = len(t.hashes)
    have = [False] * n
    bufs = {}
    send_msg(s, 2)  # interested
    choked = True
    queue = []  # (piece, begin, length) not yet requested
    outstanding = set()
    while not all(done):
        if not choked:
            if not queue and not outstanding:
                for p in range(n):
                    if have[p] and not done[p]:
                        bufs[p] = bytearray(t.piece_size(p))
                        queue += [(p, b, min(BLOCK, t.piece_size(p) - b))
                                  for b in range(0, t.piece_size(p), BLOCK)]
            while queue and len(outstanding) < 16:
                r = queue.pop(0)
                send_msg(s, 6, struct.pack(">III", *r))
                outstanding.add(r[:2])
        mid, payload = read_msg(s)
        if mid == 0:
            choked = True
            # Requests die with a choke (BEP 3): ask again when unchoked.
            for p in list(bufs):
                if not done[p]:
                    del bufs[p]
            queue, outstanding = [], set()
        elif mid == 1:
            choked = False
        elif mid == 4:
            have[struct.unpack(">I", payload)[0]] = True
        elif mid == 5:
            for p in range(n):
                have[p] = bool(payload[p // 8] & (0x80 >> (p % 8)))
        elif mid == 7:
            p, begin = struct.unpack(">II", payload[:8])
            if (p, begin) not in outstanding:
                continue
            outstanding.discard((p, begin))
            bufs[p][begin:begin + len(payload) - 8] = payload[8:]
            if not any(q == p for q, _ in outstanding) and not any(q == p for q, _, _ in queue):
                data = bytes(bufs.pop(p))
                if hashlib.sha1(data).digest() != t.hashes[p]:
                    raise SystemExit("piece %d fails its SHA-1 check" % p)
                write_piece(t, root, p, data)
                done[p] = True
    s.close()


def write_piece(t, root, p, data):
    at = 0
    for comps, off, k in t.spans(p * t.piece_length, len(data)):
        chunk = data[at:at + k]
        at += k
        if comps is None:
            if chunk.count(0) != k:
                raise SystemExit("piece %d: pad bytes are not zeros" % p)
            continue
        path = t.path(root, comps)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "r+b" if os.path.exists(path) else "wb") as f:
            f.seek(off)
            f.write(chunk)


def cmd_get(args, stop):
    t = Torrent(args.torrent)
    root = os.path.abspath(args.save_dir)
    # Every file exists at its full size, even an empty one or one whose
    # pieces arrive last.
    for comps, length in t.files:
        if comps is not None:
            path = t.path(root, comps)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.truncate(length)
    host, _, port = args.peer.rpartition(":")
    deadline = time.time() + args.timeout
    done = [False] * len(t.hashes)
    while True:
        if stop.is_set():
            raise SystemExit("interrupted")
        try:
            download(t, root, (host.strip("[]"), int(port)), deadline, done)
            out("done: %d" % sum(n for c, n in t.files if c is not None))
            return
        except (ConnectionError, OSError) as e:
            if time.time() > deadline:
                log("timeout after %gs: %s" % (args.timeout, e))
                sys.exit(1)
            log("retrying: %s" % e)
            time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description="v1-only BitTorrent peer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("seed")
    p.add_argument("torrent")
    p.add_argument("data_dir")
    p.add_argument("--port", type=int, default=0)
    p.set_defaults(fn=cmd_seed)
    p = sub.add_parser("get")
    p.add_argument("torrent")
    p.add_argument("save_dir")
    p.add_argument("--peer", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(fn=cmd_get)
    args = ap.parse_args()

    stop = threading.Event()
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if stat.S_ISFIFO(os.fstat(0).st_mode):
            def watch():
                while os.read(0, 4096):
                    pass
                stop.set()
            threading.Thread(target=watch, daemon=True).start()
    except OSError:
        pass
    args.fn(args, stop)


if __name__ == "__main__":
    main()
