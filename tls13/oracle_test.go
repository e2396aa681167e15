package tls13

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

// The test oracle: decrypting a recorded connection with its NSS key log,
// written from RFC 8446 §7 independently of the engine's key schedule, so
// tests and the corpus generator can look inside encrypted records.

// verKeyLog collects NSS key log lines ("LABEL client_random secret").
type verKeyLog struct {
	mu      sync.Mutex
	secrets map[string][]byte
	randoms map[string]bool // client_random fields seen, hex
}

func (k *verKeyLog) Write(p []byte) (int, error) {
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

func (k *verKeyLog) get(label string) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.secrets[label]
}

// verSuiteParams gives the hash and AEAD of a TLS 1.3 suite.
func verSuiteParams(suite uint16) (h func() hash.Hash, keyLen int, aead func(key []byte) (cipher.AEAD, error)) {
	gcm := func(key []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	switch suite {
	case verSuiteAES128GCM:
		return sha256.New, 16, gcm
	case verSuiteAES256GCM:
		return sha512.New384, 32, gcm
	case verSuiteChaCha:
		return sha256.New, 32, chacha20poly1305.New
	}
	return nil, 0, nil
}

// verExpandLabel is HKDF-Expand-Label (RFC 8446 §7.1) with an empty
// context.
func verExpandLabel(h func() hash.Hash, secret []byte, label string, length int) []byte {
	return verExpandLabelCtx(h, secret, label, nil, length)
}

// verExpandLabelCtx is HKDF-Expand-Label (RFC 8446 §7.1).
func verExpandLabelCtx(h func() hash.Hash, secret []byte, label string, context []byte, length int) []byte {
	var b cryptobyte.Builder
	b.AddUint16(uint16(length))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte("tls13 " + label)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(context) })
	out, err := hkdf.Expand(h, secret, string(b.BytesOrPanic()), length)
	if err != nil {
		panic(err)
	}
	return out
}

// verInnerRecord is one decrypted (or plaintext) record.
type verInnerRecord struct {
	typ       uint8
	payload   []byte
	encrypted bool
}

// verDecryptDirection decrypts one direction of a recorded connection:
// plaintext records first, then records under hsSecret until that side's
// Finished, then under appSecret, following KeyUpdates. It returns the
// records and the handshake messages they carry.
func verDecryptDirection(suite uint16, wire, hsSecret, appSecret []byte) (recs []verInnerRecord, msgs [][]byte, err error) {
	h, keyLen, newAEAD := verSuiteParams(suite)
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
		aead, err = newAEAD(verExpandLabel(h, s, "key", keyLen))
		iv = verExpandLabel(h, s, "iv", 12)
		seq = 0
		return err
	}
	epoch := 0 // 0 plaintext, 1 handshake keys, 2 application keys
	var hsBuf []byte
	raw, _ := verSplitRecords(wire)
	for _, r := range raw {
		typ, body := r[0], r[5:]
		if typ == verRecordCCS {
			continue
		}
		if typ != verRecordAppData {
			recs = append(recs, verInnerRecord{typ: typ, payload: body})
			if typ == verRecordHandshake {
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
			recs = append(recs, verInnerRecord{typ: typ, payload: plain[:i], encrypted: true})
			if typ == verRecordHandshake {
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
				switchTo = verExpandLabel(h, secret, "traffic upd", h().Size())
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

// verServerHelloSuite finds the cipher suite of the (non-HRR) ServerHello
// among handshake messages.
func verServerHelloSuite(msgs [][]byte) uint16 {
	for _, m := range msgs {
		if len(m) >= 4+2+32+1 && m[0] == 2 && !bytes.Equal(m[6:38], verHRRRandom) {
			off := 38
			off += 1 + int(m[off])
			if len(m) >= off+2 {
				return uint16(m[off])<<8 | uint16(m[off+1])
			}
		}
	}
	return 0
}

// verDecryptConn decrypts both directions of a connection recorded on the
// client side (w) with the client's key log.
func verDecryptConn(w *verWireConn, kl *verKeyLog) (c2s, s2c []verInnerRecord, c2sMsgs, s2cMsgs [][]byte, err error) {
	// The suite comes from the plaintext ServerHello.
	rawS2C := w.readBytes()
	var plainMsgs [][]byte
	recs, _ := verSplitRecords(rawS2C)
	var hs []byte
	for _, r := range recs {
		if r[0] == verRecordHandshake {
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
	suite := verServerHelloSuite(plainMsgs)
	if suite == 0 {
		return nil, nil, nil, nil, errors.New("no ServerHello recorded")
	}
	s2c, s2cMsgs, err = verDecryptDirection(suite, rawS2C, kl.get("SERVER_HANDSHAKE_TRAFFIC_SECRET"), kl.get("SERVER_TRAFFIC_SECRET_0"))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("server to client: %w", err)
	}
	c2s, c2sMsgs, err = verDecryptDirection(suite, w.wroteBytes(), kl.get("CLIENT_HANDSHAKE_TRAFFIC_SECRET"), kl.get("CLIENT_TRAFFIC_SECRET_0"))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("client to server: %w", err)
	}
	return c2s, s2c, c2sMsgs, s2cMsgs, nil
}
