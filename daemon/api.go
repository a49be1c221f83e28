// Package daemon runs many torrents in one process: one listen port, one
// DHT node and one set of rate limits shared by all of them, and a
// session folder from which every torrent comes back, in the state it was
// left in, after a restart.
//
// Remote front ends (the Transmission RPC in daemon/rpc, the web UI, the
// `shoal remote` command through the RPC) drive a session through
// Controller, so that they depend on what a session does and not on how.
// The names and values of these types follow Transmission's RPC where it
// has one, since that is what remote tools expect.
package daemon

import (
	"errors"
	"net/netip"
	"time"
)

// ID names a torrent within a session. IDs are given in the order torrents
// are added, survive restarts and are never reused, as Transmission's are.
type ID int

// State is where a torrent is in its life. The values are Transmission's
// status codes (0 stopped … 6 seeding), so the RPC passes them through.
type State int

// The states of a torrent, in Transmission's order.
const (
	Stopped      State = iota // paused by the user, or stopped by an error
	CheckWait                 // queued to check its data
	Checking                  // checking its data against the hashes
	DownloadWait              // queued to download
	Downloading               // fetching metadata or pieces
	SeedWait                  // queued to seed
	Seeding                   // has every wanted piece and serves them
)

// Priority is a file's download priority, with Transmission's values.
type Priority int

// File priorities.
const (
	PriorityLow    Priority = -1
	PriorityNormal Priority = 0
	PriorityHigh   Priority = 1
)

// Want selects the costly parts of a Status, so that listing a thousand
// torrents does not build a thousand file and peer lists nobody reads.
type Want uint

// Parts of a Status that are filled only when asked for.
const (
	WantFiles    Want = 1 << iota // Status.Files
	WantPeers                     // Status.Peers
	WantTrackers                  // Status.Trackers
	WantPieces                    // Status.Pieces
)

// FileStatus is one file of a torrent.
type FileStatus struct {
	// Name is the file's path with '/' between components, starting with
	// the torrent's name for a multi-file torrent, as Transmission shows it.
	Name      string
	Length    int64
	Completed int64 // bytes of the file in verified pieces
	Wanted    bool
	Priority  Priority
}

// PeerStatus is one connected peer.
type PeerStatus struct {
	Addr     netip.AddrPort
	Client   string  // from the extension handshake's "v", or the peer id
	Progress float64 // 0..1, from its bitfield and haves
	// RateToUs and RateToPeer are payload bytes per second.
	RateToUs, RateToPeer int64
	Encrypted, Incoming  bool
	// AmChoking/AmInterested are our side, PeerChoking/PeerInterested
	// the peer's.
	AmChoking, AmInterested, PeerChoking, PeerInterested bool
}

// TrackerStatus is one tracker of a torrent.
type TrackerStatus struct {
	URL          string
	Tier         int
	LastAnnounce time.Time // zero if never
	LastResult   string    // "Success", or why it failed
	NextAnnounce time.Time
	// Seeders and Leechers are the tracker's last counts; -1 if unknown.
	Seeders, Leechers int
	// LastPeers is how many peers its last successful announce gave.
	LastPeers int
}

// Status is a snapshot of one torrent.
type Status struct {
	ID ID
	// Hash is the torrent's 40-hex name for Transmission's hashString:
	// the v1 info-hash for v1 and hybrid torrents, the v2 info-hash
	// truncated to 20 bytes for v2-only ones (what BEP 52 announces).
	Hash string
	// V1Hash (40 hex) and V2Hash (64 hex) are the full hashes the torrent
	// has; either is "" when the torrent has no such hash.
	V1Hash, V2Hash string
	Name           string // the torrent's name; the hash until metadata arrives
	Dir            string // the folder the torrent's files are in
	Magnet         string
	State          State
	// Error says why the torrent stopped on its own (a disk error, an
	// inconsistent torrent); "" when it did not.
	Error string
	// HasMetadata is false while a magnet's info dict is being fetched.
	HasMetadata     bool
	Private         bool
	Comment         string
	Creator         string
	Created         time.Time
	PieceCount      int
	PieceSize       int64
	TotalSize       int64 // all files
	WantedSize      int64 // wanted files (Transmission's sizeWhenDone)
	Left            int64 // wanted bytes not yet verified
	Verified        int64 // bytes in verified pieces
	Downloaded      int64 // payload received this torrent's lifetime
	Uploaded        int64
	Corrupt         int64 // received and discarded
	RateDown        int64 // payload bytes per second
	RateUp          int64
	PeersConnected  int
	PeersSending    int // peers we are receiving from
	PeersGetting    int // peers we are sending to
	Added           time.Time
	Done            time.Time // when the wanted files completed; zero if not
	Activity        time.Time // last payload either way
	ETA             time.Duration
	DownLimit       int64 // bytes per second; 0 means no limit of its own
	UpLimit         int64
	Sequential      bool
	RecheckProgress float64 // 0..1 while Checking

	Files    []FileStatus    // with WantFiles
	Peers    []PeerStatus    // with WantPeers
	Trackers []TrackerStatus // with WantTrackers
	Pieces   []byte          // with WantPieces: verified pieces, MSB first
}

// ETAUnknown is the ETA of a torrent that is not downloading or has no
// rate to go by.
const ETAUnknown time.Duration = -1

// AddRequest adds a torrent by exactly one of Link, Metainfo or Path.
type AddRequest struct {
	Link     string // magnet link, or a bare v1/v2 info-hash
	Metainfo []byte // the bytes of a .torrent file
	Path     string // a .torrent file on the daemon's machine
	// Dir is where the files go; "" means the session's download folder.
	Dir    string
	Paused bool
	// Unwanted and the priority lists name files by index.
	Unwanted                  []int
	PriorityHigh, PriorityLow []int
	Sequential                bool
	ExtraTrackers             []string
	DownLimit, UpLimit        int64
	PeerLimit                 int
}

// Change changes some settings of torrents; nil and empty fields are left
// as they are.
type Change struct {
	Wanted, Unwanted                          []int // file indexes
	PriorityHigh, PriorityNormal, PriorityLow []int
	DownLimit, UpLimit                        *int64 // 0 removes the limit
	Sequential                                *bool
	PeerLimit                                 *int
	AddTrackers, RemoveTrackers               []string
}

// Settings are the session's settings.
type Settings struct {
	Version        string // the program and its version, as peers see it ("shoal 1.2")
	ConfigDir      string // the session folder
	DownloadDir    string
	ListenPort     int
	DHT, PEX, LSD  bool
	PortMapping    bool
	Encryption     string // "preferred", "required" or "tolerated", as Transmission names them
	DownLimit      int64  // bytes per second over all torrents; 0 none
	UpLimit        int64
	PeerLimit      int // per torrent
	SeedRatioLimit float64
	SeedRatioOn    bool
}

// SettingsChange changes some session settings; nil fields are left as
// they are.
type SettingsChange struct {
	DownloadDir        *string
	DownLimit, UpLimit *int64
	PeerLimit          *int
	SeedRatioLimit     *float64
	SeedRatioOn        *bool
}

// SessionStats are the session's totals.
type SessionStats struct {
	Torrents, Active, Paused int
	RateDown, RateUp         int64
	// Downloaded and Uploaded count payload since the session started;
	// the Ever figures count it over every run of the session folder.
	Downloaded, Uploaded         int64
	DownloadedEver, UploadedEver int64
	Started                      time.Time
}

// Errors a Controller returns that front ends tell apart.
var (
	// ErrNotFound names a torrent ID that is not in the session.
	ErrNotFound = errors.New("no such torrent")
	// ErrOutside is a path outside the folders the daemon owns.
	ErrOutside = errors.New("path outside the daemon's folders")
)

// Controller is what a front end may do with a session. *Session
// implements it; every method is safe for concurrent use.
type Controller interface {
	// Torrents returns the status of the given torrents, or of all of them
	// when ids is nil, in ID order; unknown IDs are left out.
	Torrents(ids []ID, want Want) []Status
	// Removed returns the IDs of torrents removed since the given time,
	// for Transmission's "recently-active".
	Removed(since time.Time) []ID
	// Add adds a torrent. If the session has it already, Add returns its
	// status with dup true and changes nothing.
	Add(req AddRequest) (st Status, dup bool, err error)
	Start(ids []ID) error
	Stop(ids []ID) error
	// Remove removes torrents, and their files too when deleteData is set
	// (only files the torrent owns, never the folder they are in).
	Remove(ids []ID, deleteData bool) error
	// Verify checks the torrents' data again against their hashes.
	Verify(ids []ID) error
	// Reannounce asks the trackers and the DHT for peers now.
	Reannounce(ids []ID) error
	Set(ids []ID, ch Change) error
	Settings() Settings
	SetSettings(ch SettingsChange) error
	Stats() SessionStats
	// FreeSpace returns the bytes free at path, which must be one of the
	// daemon's folders or inside one (ErrOutside otherwise).
	FreeSpace(path string) (int64, error)
	// PortOpen says whether peers from outside can reach the listen port,
	// as far as the session knows. known is false when it cannot tell;
	// shoal asks no third party.
	PortOpen() (open, known bool)
}
