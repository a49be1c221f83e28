package rpc

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Credentials are the user name and password the RPC requires.
type Credentials struct {
	User string
	// password is the password in clear, or nil when hash is set.
	password []byte
	// hash is a bcrypt hash of the password.
	hash []byte

	mu sync.Mutex
	// good is the SHA-256 of the last "user:password" bcrypt accepted: a
	// web UI sends its credentials with every call, every second or two,
	// and bcrypt is meant to be slow.
	good []byte
}

// NewCredentials returns credentials checked against a password in clear.
func NewCredentials(user, password string) *Credentials {
	return &Credentials{User: user, password: []byte(password)}
}

// LoadAuthFile reads the RPC's credentials from path: one line
// "user:password", where password is either the password itself or a
// bcrypt hash of it ("$2a$…", "$2b$…", "$2y$…", as `htpasswd -nbB` and
// `mkpasswd -m bcrypt` make). A file holding a password in clear must not
// be readable by others than its owner and group (mode 0640 or tighter):
// anyone who reads it can drive the daemon.
func LoadAuthFile(path string) (*Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rpc auth file: %w", err)
	}
	line, _, _ := strings.Cut(strings.TrimLeft(string(data), "\n\r"), "\n")
	line = strings.TrimRight(line, "\r")
	user, pass, ok := strings.Cut(line, ":")
	if !ok || user == "" || pass == "" {
		return nil, fmt.Errorf("rpc auth file %s: want one line user:password", path)
	}
	if isBcrypt(pass) {
		if _, err := bcrypt.Cost([]byte(pass)); err != nil {
			return nil, fmt.Errorf("rpc auth file %s: bcrypt hash: %w", path, err)
		}
		return &Credentials{User: user, hash: []byte(pass)}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("rpc auth file: %w", err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("rpc auth file %s holds a password in clear and everyone may read it (mode %v): chmod o-rwx it, or store a bcrypt hash", path, fi.Mode().Perm())
	}
	return NewCredentials(user, pass), nil
}

func isBcrypt(s string) bool {
	return len(s) == 60 && (strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$"))
}

// check compares the credentials of a request in constant time.
func (c *Credentials) check(user, password string) bool {
	userOK := subtle.ConstantTimeCompare(digest(user), digest(c.User)) == 1
	if c.hash == nil {
		// Compared as digests: equal lengths, so the time says nothing
		// of the password's length either.
		return subtle.ConstantTimeCompare(digest(password), digest(string(c.password))) == 1 && userOK
	}
	sum := digest(user + ":" + password)
	c.mu.Lock()
	good := c.good
	c.mu.Unlock()
	if good != nil && subtle.ConstantTimeCompare(sum, good) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(c.hash, []byte(password)) != nil || !userOK {
		return false
	}
	c.mu.Lock()
	c.good = bytes.Clone(sum)
	c.mu.Unlock()
	return true
}

func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// LoadClientAuth reads a user and password for a Client from path, in
// LoadAuthFile's format. A client needs the password itself, so a file
// holding a bcrypt hash is refused, as is one everyone may read.
func LoadClientAuth(path string) (user, password string, err error) {
	creds, err := LoadAuthFile(path)
	if err != nil {
		return "", "", err
	}
	if creds.hash != nil {
		return "", "", fmt.Errorf("rpc auth file %s holds a bcrypt hash, which the server checks against; the client needs the password itself", path)
	}
	return creds.User, string(creds.password), nil
}
