# Drives a running `shoal daemon` with Debian's python3-transmissionrpc
# 0.11 and prints, as the last line, one JSON object of what it saw, for
# TestDaemonPythonTransmissionRPC to check.
# Arguments: PORT USER PASSWORD TORRENT MAGNET.
import base64
import json
import sys
import time

import transmissionrpc

port, user, password, torrent, magnet = sys.argv[1:6]
c = transmissionrpc.Client('127.0.0.1', port=int(port), user=user, password=password)
out = {}
with open(torrent, 'rb') as f:
    data = base64.b64encode(f.read()).decode()
a = c.add_torrent(data)
m = c.add_torrent(magnet)
out['added'] = [[a.id, a.hashString], [m.id, m.hashString]]


def wait(cond, what):
    deadline = time.time() + 15
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise SystemExit('timed out waiting for ' + what + ': ' +
                     repr([(t.id, t.status, t.progress) for t in c.get_torrents()]))


wait(lambda: all(t.status == 'seeding' for t in c.get_torrents()), 'the downloads')
out['done'] = sorted([t.id, t.name, t.status, t.progress, t.hashString]
                     for t in c.get_torrents())
out['files'] = [[f['name'], f['size'], f['completed'], f['selected']]
                for _, f in sorted(c.get_torrent(a.id).files().items())]
c.stop_torrent(m.id)
wait(lambda: c.get_torrent(m.id).status == 'stopped', 'the stop')
out['stopped'] = [t.status for t in sorted(c.get_torrents(), key=lambda t: t.id)]
c.start_torrent(m.id)
wait(lambda: c.get_torrent(m.id).status == 'seeding', 'the start')
out['started'] = [t.status for t in sorted(c.get_torrents(), key=lambda t: t.id)]
s = c.get_session()
out['session'] = [s.download_dir, s.rpc_version]
c.remove_torrent(a.id)
c.remove_torrent(m.id, delete_data=True)
wait(lambda: not c.get_torrents(), 'the removals')
print(json.dumps(out))
