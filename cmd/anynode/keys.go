package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/anysched/anysched/tls13"
)

// maxKeyFileSize bounds the ticket-key file: it holds two keys and comments.
const maxKeyFileSize = 64 << 10

// keyFileError names the file and, when known, the line that is wrong.
type keyFileError struct {
	file string
	line int
	msg  string
}

func (e *keyFileError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return fmt.Sprintf("%s: %s", e.file, e.msg)
}

// parseTicketKeys reads a pool's ticket-key file: one 32-byte secret per
// line, as 64 hex digits or standard base64; blank lines and lines
// starting with '#' are ignored. The first key seals new tickets; a second
// (the previous key) still opens tickets sealed before a rotation. Every
// node of a pool reads the same file, so each resumes the others' tickets.
func parseTicketKeys(name string, r io.Reader) ([][32]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	if err != nil {
		return nil, &keyFileError{file: name, msg: err.Error()}
	}
	if len(data) > maxKeyFileSize {
		return nil, &keyFileError{file: name, msg: fmt.Sprintf("larger than %d bytes", maxKeyFileSize)}
	}
	var keys [][32]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := decodeKey(line)
		if err != nil {
			return nil, &keyFileError{file: name, line: n, msg: err.Error()}
		}
		if len(keys) == 2 {
			return nil, &keyFileError{file: name, line: n, msg: "a third key: the file holds the current key and at most one previous key"}
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, &keyFileError{file: name, msg: err.Error()}
	}
	if len(keys) == 0 {
		return nil, &keyFileError{file: name, msg: "no key (want one 32-byte key per line, 64 hex digits or base64)"}
	}
	if len(keys) == 2 && keys[0] == keys[1] {
		return nil, &keyFileError{file: name, msg: "the previous key equals the current key"}
	}
	return keys, nil
}

func decodeKey(s string) ([32]byte, error) {
	var key [32]byte
	var raw []byte
	var err error
	if len(s) == 64 {
		raw, err = hex.DecodeString(s)
	} else {
		raw, err = base64.StdEncoding.DecodeString(s)
	}
	if err != nil || len(raw) != 32 {
		clear(raw)
		return key, fmt.Errorf("not a 32-byte key (want 64 hex digits or base64 of 32 bytes, got %d characters)", len(s))
	}
	copy(key[:], raw)
	clear(raw)
	return key, nil
}

func loadTicketKeys(name string) ([][32]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, &keyFileError{file: name, msg: err.Error()}
	}
	defer f.Close()
	return parseTicketKeys(name, f)
}

// keyWatcher reloads the ticket-key file into a live tls13.TicketKeys on
// SIGHUP (reload) and when the file changes on disk (checked every
// interval), so a pool rotates keys without a restart. A bad file keeps the
// keys in use and is logged.
type keyWatcher struct {
	file     string
	keys     *tls13.TicketKeys
	log      *slog.Logger
	mu       sync.Mutex
	lastStat fileStamp
	reloads  func(ok bool)
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func statStamp(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}, nil
}

// reload reads the file and installs its keys; it reports whether they
// were installed.
func (w *keyWatcher) reload() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, _ := statStamp(w.file)
	keys, err := loadTicketKeys(w.file)
	w.lastStat = st
	if err != nil {
		w.log.Error("ticket keys not reloaded; the old keys stay in use", "err", err)
		if w.reloads != nil {
			w.reloads(false)
		}
		return false
	}
	w.keys.SetKeys(keys[0], keys[1:]...)
	for i := range keys {
		clear(keys[i][:])
	}
	w.log.Info("ticket keys loaded", "file", w.file)
	if w.reloads != nil {
		w.reloads(true)
	}
	return true
}

// changed reports whether the file differs from what was last loaded.
func (w *keyWatcher) changed() bool {
	st, err := statStamp(w.file)
	if err != nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return st != w.lastStat
}
