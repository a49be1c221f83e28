#!/usr/bin/python3
"""libtorrent 2.0 peer for shoal's interop tests and transfer benchmark.

  lt_peer.py seed TORRENT_FILE DATA_DIR [--port N] [--unchoke-slots N] [--peer HOST:PORT]...
      Seed TORRENT_FILE whose data is at DATA_DIR/<name>. --unchoke-slots 0
      never unchokes anyone: peers get only the allowed-fast pieces (BEP 6).
      --peer connects out to a peer (again every 2 s while none is
      connected), for clients that cannot be told of us.
      stdout: listening: 127.0.0.1:PORT
              info-hash: <64 hex v2>        (all zeros for a v1 torrent)
              info-hash-v1: <40 hex v1>     (only if the torrent has one)
              magnet: <magnet with every hash and x.pe>
              seeding
  lt_peer.py seed-magnet DATA_PATH [--piece-length N] [--port N]
      Make a v2-only torrent of DATA_PATH in memory and seed it.
      stdout: listening: 127.0.0.1:PORT
              info-hash: <64 hex v2>
              magnet: magnet:?xt=urn:btmh:1220...
              seeding
  lt_peer.py get (TORRENT_FILE | MAGNET) SAVE_DIR [--peer HOST:PORT]... [--tracker URL]...
                 [--timeout SECONDS] [--port N]
      Download from the given peers only (a magnet's metadata comes from them
      too, BEP 9).
      stdout: listening: 127.0.0.1:PORT
              progress: <fraction 0..1> <bytes done>     (every 0.5 s)
              done: <bytes> <seconds> <MB/s>             (1 MB = 10^6 bytes)
      Exit 0 when complete, 1 on timeout or error (reason on stderr).

The seeders serve until SIGTERM/SIGINT, or until stdin reaches EOF when stdin
is a pipe or socket (so a harness that dies takes its seeders with it; stdin
from /dev/null or a terminal is not watched).

Nothing leaves loopback: DHT, LSD, UPnP and NAT-PMP are off, and the session
listens on 127.0.0.1 only. uTP is off so that throughput compares TCP with TCP.

lt_peer.py --encryption POLICY COMMAND ... sets libtorrent's out_enc_policy
and in_enc_policy both to POLICY: forced (RC4 only, as allowed_enc_level
then says), enabled, or disabled. Without it libtorrent's defaults hold
(enabled both ways).

Run it with /usr/bin/python3: Debian's python3-libtorrent is importable only
by the system interpreter.
"""
import argparse
import os
import signal
import stat
import sys
import threading
import time

import libtorrent as lt

stop = threading.Event()
# Session settings of --encryption (main), for every session made.
enc_settings = {}


def out(line):
    # Harnesses read stdout line by line while we keep running, so never let
    # a line sit in a buffer.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write("lt_peer: %s\n" % msg)
    sys.stderr.flush()


def make_session(port, extra=None):
    s = lt.high_performance_seed()
    s.update({
        "listen_interfaces": "127.0.0.1:%d" % port,
        # Only loopback peers named on the command line; nothing may go out.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # Compare TCP with TCP: shoal speaks TCP only.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Every peer is 127.0.0.1, so the default of one connection per IP
        # would refuse a second local client.
        "allow_multiple_connections_per_ip": True,
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "ignore_limits_on_local_network": True,
        "peer_fingerprint": lt.generate_fingerprint("LI", 2, 0, 8, 0),
        "user_agent": "libtorrent-interop/" + lt.__version__,
        "alert_mask": (lt.alert.category_t.status_notification
                       | lt.alert.category_t.error_notification
                       | lt.alert.category_t.storage_notification),
    })
    s.update(extra or {})
    s.update(enc_settings)
    return lt.session(s)


def wait_listening(ses, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                raise SystemExit("listen failed: " + a.message())
            if isinstance(a, lt.listen_succeeded_alert):
                port = ses.listen_port()
                out("listening: 127.0.0.1:%d" % port)
                return port
        ses.wait_for_alert(100)
    raise SystemExit("no listen socket after %ds" % timeout)


def log_alerts(ses):
    """Log alerts worth seeing; return the first torrent error, if any."""
    err = None
    for a in ses.pop_alerts():
        if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert,
                          lt.hash_failed_alert, lt.metadata_failed_alert)):
            log(a.message())
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                err = err or a.message()
        elif isinstance(a, (lt.state_changed_alert, lt.metadata_received_alert,
                            lt.torrent_finished_alert)):
            log(a.message())
        elif a.category() & lt.alert.category_t.error_notification:
            log(a.message())
    return err


def install_stop_handlers():
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        def watch():
            # os.read, not sys.stdin: a daemon thread blocked inside a
            # buffered reader aborts the interpreter at exit.
            while os.read(0, 4096):
                pass
            stop.set()
        threading.Thread(target=watch, daemon=True).start()


def v2_hex(ti):
    return ti.info_hashes().v2.to_bytes().hex()


def print_hashes(ti, port):
    out("info-hash: " + v2_hex(ti))
    if ti.info_hashes().has_v1():
        out("info-hash-v1: " + ti.info_hashes().v1.to_bytes().hex())
    out("magnet: %s&x.pe=127.0.0.1:%d" % (lt.make_magnet_uri(ti), port))


def serve(ses, h, peers=()):
    """Wait for the check to end, announce `seeding`, then serve until told to stop."""
    announced = False
    last_connect = 0.0
    while not stop.is_set():
        err = log_alerts(ses)
        if err:
            raise SystemExit("seed failed: " + err)
        st = h.status()
        if not announced and st.state == lt.torrent_status.seeding:
            out("seeding")
            announced = True
        elif not announced and st.state == lt.torrent_status.downloading:
            # The check is over and pieces are missing: nothing to serve.
            # ("finished" is no such sign: a complete torrent passes through
            # it on its way from checking to seeding.)
            raise SystemExit("data incomplete after check: %.4f" % st.progress)
        if announced and peers and st.num_peers == 0 and time.time() - last_connect >= 2:
            for p in peers:
                h.connect_peer(p)
            last_connect = time.time()
        stop.wait(0.2)
    log("stopping")


def add_seed(ses, ti, save_path):
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    # Not auto-managed: the queue must never pause our only torrent.
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return ses.add_torrent(atp)


def cmd_seed(args):
    ti = lt.torrent_info(args.torrent)
    extra = {}
    if args.unchoke_slots >= 0:
        # Given when the session starts: the slot count is read then.
        extra = {"choking_algorithm": 0,  # fixed_slots_choker
                 "unchoke_slots_limit": args.unchoke_slots,
                 # With it on, loopback peers were unchoked all the same.
                 "ignore_limits_on_local_network": False,
                 # high_performance_seed turns BEP 6's set off.
                 "allowed_fast_set_size": 5}
    if args.peer:
        # The peers are named once and nothing names them again: keep
        # trying them (see cmd_get).
        extra.update({"max_failcount": 1000, "min_reconnect_time": 1})
    if args.lsd:
        extra["enable_lsd"] = True
    ses = make_session(args.port, extra)
    port = wait_listening(ses)
    print_hashes(ti, port)
    h = add_seed(ses, ti, os.path.abspath(args.data_dir))
    serve(ses, h, args.peer or ())


def cmd_seed_magnet(args):
    path = os.path.abspath(args.data_path)
    fs = lt.file_storage()
    lt.add_files(fs, path)
    if fs.num_files() == 0:
        raise SystemExit("no files under " + path)
    ct = lt.create_torrent(fs, args.piece_length,
                           flags=lt.create_torrent.v2_only)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    ti = lt.torrent_info(ct.generate())
    ses = make_session(args.port)
    wait_listening(ses)
    out("info-hash: " + v2_hex(ti))
    out("magnet: " + lt.make_magnet_uri(ti))
    h = add_seed(ses, ti, os.path.dirname(path))
    serve(ses, h)


def parse_peer(s):
    host, sep, port = s.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError("want HOST:PORT, got " + s)
    return host.strip("[]"), int(port)


def cmd_get(args):
    if not args.peer and not args.tracker and not args.lsd and not args.source.startswith("magnet:"):
        raise SystemExit("get needs --peer, --tracker or --lsd (or a magnet with x.pe)")
    if args.source.startswith("magnet:"):
        atp = lt.parse_magnet_uri(args.source)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.source)
    atp.save_path = os.path.abspath(args.save_dir)
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    # A magnet or torrent may name trackers; this peer talks to the given
    # peers and trackers only.
    atp.trackers = list(args.tracker or [])

    # --lsd: peers found by local service discovery (BEP 14) alone, on the
    # interface of the listen address (a namespace's loopback in tests).
    ses = make_session(args.port, {"enable_lsd": True} if args.lsd else None)
    # The peers are given once, by address, and there is no tracker or DHT
    # to name them again: high_performance_seed's max_failcount=1 and the
    # default 60 s min_reconnect_time would strand us after one refused
    # connect (connect_peer on a known peer does not reset its fail count),
    # for instance when the seed is not listening yet.
    ses.apply_settings({"max_failcount": 1000, "min_reconnect_time": 1})
    wait_listening(ses)
    start = time.time()
    h = ses.add_torrent(atp)

    def connect():
        for p in args.peer or []:
            h.connect_peer(p)
    connect()
    last_connect = time.time()
    last_progress = 0.0
    deadline = start + args.timeout
    while True:
        now = time.time()
        if stop.is_set():
            raise SystemExit("interrupted")
        if now > deadline:
            st = h.status()
            log("timeout after %gs: state=%s progress=%.4f peers=%d" %
                (args.timeout, st.state, st.progress, st.num_peers))
            sys.exit(1)
        err = log_alerts(ses)
        if err:
            log("download failed: " + err)
            sys.exit(1)
        st = h.status()
        if st.has_metadata and (st.is_finished or
                                st.state == lt.torrent_status.seeding):
            secs = time.time() - start
            total = st.total_wanted_done
            out("progress: 1 %d" % total)
            out("done: %d %.3f %.2f" % (total, secs, total / secs / 1e6))
            return
        if now - last_progress >= 0.5:
            out("progress: %.4f %d" % (st.progress, st.total_wanted_done))
            last_progress = now
        # Harmless if the peer is already known, and brings it back if
        # libtorrent pruned it from the peer list.
        if st.num_peers == 0 and now - last_connect >= 2:
            connect()
            last_connect = now
        ses.wait_for_alert(100)


def main():
    ap = argparse.ArgumentParser(description="libtorrent 2.0 interop peer")
    ap.add_argument("--encryption", choices=["forced", "enabled", "disabled"],
                    help="out_enc_policy and in_enc_policy (MSE) both ways")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("seed")
    p.add_argument("torrent")
    p.add_argument("data_dir")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--unchoke-slots", type=int, default=-1,
                   help="upload slots; -1 keeps libtorrent's setting")
    p.add_argument("--peer", type=parse_peer, action="append",
                   help="connect out to this peer (repeatable)")
    p.add_argument("--lsd", action="store_true",
                   help="announce by local service discovery (BEP 14)")
    p.set_defaults(fn=cmd_seed)

    p = sub.add_parser("seed-magnet")
    p.add_argument("data_path")
    p.add_argument("--piece-length", type=int, default=0,
                   help="bytes; 0 lets libtorrent choose")
    p.add_argument("--port", type=int, default=0)
    p.set_defaults(fn=cmd_seed_magnet)

    p = sub.add_parser("get")
    p.add_argument("source", help="a .torrent file or a magnet link")
    p.add_argument("save_dir")
    p.add_argument("--peer", type=parse_peer, action="append")
    p.add_argument("--tracker", action="append",
                   help="announce to this tracker URL (repeatable)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--lsd", action="store_true",
                   help="find peers by local service discovery (BEP 14)")
    p.set_defaults(fn=cmd_get)

    args = ap.parse_args()
    if args.encryption:
        pol = getattr(lt.enc_policy, "pe_" + args.encryption)
        enc_settings.update({"out_enc_policy": int(pol), "in_enc_policy": int(pol)})
        if args.encryption == "forced":
            # Encrypted to the end, not only the obfuscated handshake.
            enc_settings.update({"allowed_enc_level": int(lt.enc_level.pe_rc4),
                                 "prefer_rc4": True})
    install_stop_handlers()
    args.fn(args)


if __name__ == "__main__":
    main()
