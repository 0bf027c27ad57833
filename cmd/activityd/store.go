package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/activityd/activityd/adapters/storage/sqlite"
)

// storeInfo says which store a DATABASE_URL names, in the words a person
// can check against another process's: the absolute path of a SQLite
// file (so that two commands run from different directories visibly
// differ), "memory:", or the URL with its password hidden.
type storeInfo struct {
	Name string // sqlite:/abs/path.db, memory:, postgres://user:xxxxx@host/db
	// Path is the SQLite file's absolute path; "" for any other store.
	Path string
	// Creating reports that the SQLite file does not exist yet: opening
	// the store creates an empty one.
	Creating bool
	// Ephemeral reports a store that lives only as long as the process.
	Ephemeral bool
}

// describeStore describes the store databaseURL names, without opening
// it. A URL it cannot make sense of is described redacted, as it is: the
// open that follows reports what is wrong with it.
func describeStore(databaseURL string) storeInfo {
	scheme, _, _ := strings.Cut(databaseURL, ":")
	switch strings.ToLower(scheme) {
	case "memory":
		return storeInfo{Name: "memory:", Ephemeral: true}
	case "sqlite":
		c, err := sqlite.ParseURL(databaseURL)
		switch {
		case err != nil:
		case c.Memory:
			return storeInfo{Name: "sqlite::memory:", Ephemeral: true}
		default:
			path, err := filepath.Abs(c.Path)
			if err != nil {
				path = c.Path
			}
			_, err = os.Stat(path)
			return storeInfo{Name: "sqlite:" + path, Path: path, Creating: errors.Is(err, fs.ErrNotExist)}
		}
	}
	return storeInfo{Name: redactURL(databaseURL)}
}

// storeNote says which store a command is about to open, once, before it
// opens it.
type storeNote func(storeInfo)

// cliStoreNote is the store note of a one-shot command (token, import,
// migrate) on standard error: the store, and loudly, a store about to be
// created, the sign of a command run against another store than the
// server's (from another directory, without the server's DATABASE_URL).
func cliStoreNote(cmd string, stderr io.Writer) storeNote {
	return func(s storeInfo) {
		fmt.Fprintf(stderr, "activityd %s: store %s\n", cmd, s.Name)
		switch {
		case s.Creating:
			fmt.Fprintf(stderr, "activityd %s: WARNING: no store at %s yet: creating an empty one. "+
				"Is this the store your server uses? Set DATABASE_URL (the server said which store it uses when it started; "+
				"`activityd config` shows the one this command reads).\n", cmd, s.Path)
		case s.Ephemeral:
			fmt.Fprintf(stderr, "activityd %s: WARNING: %s keeps nothing once this command exits.\n", cmd, s.Name)
		}
	}
}

// logStoreNote is the store note of a long-running command (serve,
// worker, scheduler): a log line.
func logStoreNote(log *slog.Logger) storeNote {
	return func(s storeInfo) {
		if s.Creating {
			log.Info("opening store: no store there yet, creating an empty one", "storage", s.Name)
			return
		}
		log.Info("opening store", "storage", s.Name)
	}
}

// redactURL hides the secrets of a URL (a storage or Redis URL, an
// import's source) before it is logged or printed: the password of its
// user information, and any query parameter whose name says it is a
// secret (password=, sslpassword=, token=...). What does not parse as a
// URL (a Redis cluster's host list may not) loses everything between
// "://" and its last "@".
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i, j := strings.Index(s, "://"), strings.LastIndex(s, "@"); i >= 0 && j > i {
			return s[:i+3] + "xxxxx" + s[j:]
		}
		return s
	}
	q, hid := u.Query(), false
	for k := range q {
		if secretName(k) {
			q.Set(k, "xxxxx")
			hid = true
		}
	}
	if hid {
		u.RawQuery = q.Encode()
	}
	if u.User == nil && !hid {
		return s
	}
	return u.Redacted()
}

// secretName reports whether a URL query parameter named name holds a
// secret, by its name.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"pass", "secret", "token", "credential", "apikey", "api_key"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
