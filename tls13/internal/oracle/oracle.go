// Package oracle is the tls13 tests' independent view of TLS 1.3 on the
// wire: HKDF-Expand-Label and the record protection of RFC 8446 §5 and §7,
// written from the RFC on the standard library and x/crypto alone, so that
// tests can look inside encrypted records and derive keys without trusting
// the engine under test. It cannot import tls13 (the tests that use it live
// in tls13, so the import would be a cycle): it is independent by
// construction. It owns NSS key log parsing (KeyLog), suite parameters,
// HKDF-Expand-Label, and decrypting a recorded connection.
package oracle

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
)

// Wire values as RFC 8446 numbers them.
const (
	recordCCS       = 20
	recordHandshake = 22
	recordAppData   = 23

	suiteAES128GCM = 0x1301
	suiteAES256GCM = 0x1302
	suiteChaCha20  = 0x1303
)

// HRRRandom is the ServerHello.random that marks a HelloRetryRequest
// (RFC 8446 §4.1.3: SHA-256 of "HelloRetryRequest").
var HRRRandom = []byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// SplitRecords cuts whole TLS records off b; the incomplete tail is
// returned as rest.
func SplitRecords(b []byte) (recs [][]byte, rest []byte) {
	for len(b) >= 5 {
		n := 5 + (int(b[3])<<8 | int(b[4]))
		if len(b) < n {
			break
		}
		recs = append(recs, b[:n:n])
		b = b[n:]
	}
	return recs, b
}

// ClientRandoms returns the client_random fields (hex) the log named.
func (k *KeyLog) ClientRandoms() map[string]bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]bool, len(k.randoms))
	for r := range k.randoms {
		out[r] = true
	}
	return out
}

// KeyLog collects NSS key log lines ("LABEL client_random secret").
type KeyLog struct {
	mu      sync.Mutex
	secrets map[string][]byte
	randoms map[string]bool // client_random fields seen, hex
}

// Write takes key log lines; lines that are not three fields with a hex
// secret are passed over.
func (k *KeyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.secrets == nil {
		k.secrets = map[string][]byte{}
	}
	for _, line := range strings.Split(string(p), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		sec, err := hex.DecodeString(f[2])
		if err != nil {
			continue
		}
		k.secrets[f[0]] = sec
		if k.randoms == nil {
			k.randoms = map[string]bool{}
		}
		k.randoms[f[1]] = true
	}
	return len(p), nil
}

// Secret returns the secret logged under label (nil when none was).
func (k *KeyLog) Secret(label string) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.secrets[label]
}

// SuiteParams gives the hash and AEAD of a TLS 1.3 suite.
func SuiteParams(suite uint16) (h func() hash.Hash, keyLen int, aead func(key []byte) (cipher.AEAD, error)) {
	gcm := func(key []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	switch suite {
	case suiteAES128GCM:
		return sha256.New, 16, gcm
	case suiteAES256GCM:
		return sha512.New384, 32, gcm
	case suiteChaCha20:
		return sha256.New, 32, chacha20poly1305.New
	}
	return nil, 0, nil
}

// ExpandLabel is HKDF-Expand-Label (RFC 8446 §7.1) with an empty
// context.
func ExpandLabel(h func() hash.Hash, secret []byte, label string, length int) []byte {
	return ExpandLabelContext(h, secret, label, nil, length)
}

// ExpandLabelContext is HKDF-Expand-Label (RFC 8446 §7.1).
func ExpandLabelContext(h func() hash.Hash, secret []byte, label string, context []byte, length int) []byte {
	var b cryptobyte.Builder
	b.AddUint16(uint16(length))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte("tls13 " + label)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(context) })
	info, err := b.Bytes()
	if err != nil {
		return nil // a label or context longer than its length prefix
	}
	out, err := hkdf.Expand(h, secret, string(info), length)
	if err != nil {
		return nil // longer than HKDF can expand
	}
	return out
}

// Record is one decrypted (or plaintext) record.
type Record struct {
	Type      uint8
	Payload   []byte
	Encrypted bool
}

// DecryptDirection decrypts one direction of a recorded connection:
// plaintext records first, then records under hsSecret until that side's
// Finished, then under appSecret, following KeyUpdates. It returns the
// records and the handshake messages they carry.
func DecryptDirection(suite uint16, wire, hsSecret, appSecret []byte) (recs []Record, msgs [][]byte, err error) {
	h, keyLen, newAEAD := SuiteParams(suite)
	if h == nil {
		return nil, nil, fmt.Errorf("unknown suite %#04x", suite)
	}
	var aead cipher.AEAD
	var iv []byte
	var seq uint64
	secret := []byte(nil)
	setKey := func(s []byte) error {
		secret = s
		var err error
		aead, err = newAEAD(ExpandLabel(h, s, "key", keyLen))
		iv = ExpandLabel(h, s, "iv", 12)
		seq = 0
		return err
	}
	epoch := 0 // 0 plaintext, 1 handshake keys, 2 application keys
	var hsBuf []byte
	raw, _ := SplitRecords(wire)
	for _, r := range raw {
		typ, body := r[0], r[5:]
		if typ == recordCCS {
			continue
		}
		if typ != recordAppData {
			recs = append(recs, Record{Type: typ, Payload: body})
			if typ == recordHandshake {
				hsBuf = append(hsBuf, body...)
			}
		} else {
			if epoch == 0 {
				if hsSecret == nil {
					return recs, msgs, errors.New("encrypted record but no handshake secret")
				}
				if err := setKey(hsSecret); err != nil {
					return recs, msgs, err
				}
				epoch = 1
			}
			nonce := append([]byte(nil), iv...)
			for i := 0; i < 8; i++ {
				nonce[len(nonce)-1-i] ^= byte(seq >> (8 * i))
			}
			seq++
			plain, err := aead.Open(nil, nonce, body, r[:5])
			if err != nil {
				return recs, msgs, fmt.Errorf("record %d: %v", len(recs), err)
			}
			i := len(plain) - 1
			for i >= 0 && plain[i] == 0 {
				i--
			}
			if i < 0 {
				return recs, msgs, errors.New("all-zero inner plaintext")
			}
			typ = plain[i]
			recs = append(recs, Record{Type: typ, Payload: plain[:i], Encrypted: true})
			if typ == recordHandshake {
				hsBuf = append(hsBuf, plain[:i]...)
			}
		}
		// Cut complete handshake messages and follow key changes, which
		// fall on record boundaries.
		switchTo := []byte(nil)
		for len(hsBuf) >= 4 {
			n := 4 + (int(hsBuf[1])<<16 | int(hsBuf[2])<<8 | int(hsBuf[3]))
			if len(hsBuf) < n {
				break
			}
			m := append([]byte(nil), hsBuf[:n]...)
			msgs = append(msgs, m)
			hsBuf = hsBuf[n:]
			switch {
			case m[0] == 20 && epoch == 1:
				switchTo = appSecret
			case m[0] == 24 && epoch == 2:
				switchTo = ExpandLabel(h, secret, "traffic upd", h().Size())
			}
		}
		if switchTo != nil {
			if err := setKey(switchTo); err != nil {
				return recs, msgs, err
			}
			epoch = 2
		}
	}
	return recs, msgs, nil
}

// ServerHelloSuite finds the cipher suite of the (non-HRR) ServerHello
// among handshake messages.
func ServerHelloSuite(msgs [][]byte) uint16 {
	for _, m := range msgs {
		if len(m) >= 4+2+32+1 && m[0] == 2 && !bytes.Equal(m[6:38], HRRRandom) {
			off := 38
			off += 1 + int(m[off])
			if len(m) >= off+2 {
				return uint16(m[off])<<8 | uint16(m[off+1])
			}
		}
	}
	return 0
}

// DecryptConn decrypts both directions of a connection, given the bytes
// the client wrote (c2sWire) and read (s2cWire), with the key log of
// either end.
func DecryptConn(c2sWire, s2cWire []byte, kl *KeyLog) (c2s, s2c []Record, c2sMsgs, s2cMsgs [][]byte, err error) {
	// The suite comes from the plaintext ServerHello.
	rawS2C := s2cWire
	var plainMsgs [][]byte
	recs, _ := SplitRecords(rawS2C)
	var hs []byte
	for _, r := range recs {
		if r[0] == recordHandshake {
			hs = append(hs, r[5:]...)
		}
	}
	for len(hs) >= 4 {
		n := 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
		if len(hs) < n {
			break
		}
		plainMsgs = append(plainMsgs, hs[:n])
		hs = hs[n:]
	}
	suite := ServerHelloSuite(plainMsgs)
	if suite == 0 {
		return nil, nil, nil, nil, errors.New("no ServerHello recorded")
	}
	s2c, s2cMsgs, err = DecryptDirection(suite, rawS2C, kl.Secret("SERVER_HANDSHAKE_TRAFFIC_SECRET"), kl.Secret("SERVER_TRAFFIC_SECRET_0"))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("server to client: %w", err)
	}
	c2s, c2sMsgs, err = DecryptDirection(suite, c2sWire, kl.Secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"), kl.Secret("CLIENT_TRAFFIC_SECRET_0"))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("client to server: %w", err)
	}
	return c2s, s2c, c2sMsgs, s2cMsgs, nil
}
