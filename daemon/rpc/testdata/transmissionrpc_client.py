# Drives a Transmission RPC server with Debian's python3-transmissionrpc
# 0.11 and prints, as the last line, one JSON object of what it saw, for
# TestPythonTransmissionRPC to check. Arguments: PORT USER PASSWORD TORRENT.
import base64
import json
import sys

import transmissionrpc

port, user, password, torrent = sys.argv[1:5]
c = transmissionrpc.Client('127.0.0.1', port=int(port), user=user, password=password)
out = {}
out['torrents'] = [[t.id, t.name, t.status, t.progress, t.hashString, t.ratio,
                    t.eta.total_seconds()] for t in c.get_torrents()]
t = c.get_torrent(1)
out['files'] = [[f['name'], f['size'], f['completed'], f['selected'], f['priority']]
                for _, f in sorted(t.files().items())]
out['peers'] = len(t.peers)
out['trackers'] = [tr['announce'] for tr in t.trackers]
s = c.get_session()
out['session'] = [s.download_dir, s.version, s.rpc_version]
c.stop_torrent(1)
out['stopped'] = c.get_torrent(1).status
c.start_torrent(1)
c.change_torrent(1, files_unwanted=[1], uploadLimit=100)
t = c.get_torrent(1)
out['unwanted'] = [f['selected'] for _, f in sorted(t.files().items())]
out['uploadLimit'] = t.uploadLimit
m = c.add_torrent('magnet:?xt=urn:btih:' + '0123456789' * 4 + '&dn=mag')
out['magnet'] = [m.id, m.name]
with open(torrent, 'rb') as f:
    data = base64.b64encode(f.read()).decode()
x = c.add_torrent(data, paused=True)
out['metainfo'] = [x.id, x.hashString]
c.remove_torrent(m.id, delete_data=True)
out['left'] = [t.id for t in c.get_torrents()]
out['free'] = c.free_space(s.download_dir)
print(json.dumps(out))
