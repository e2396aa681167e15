package tls13

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// cipherSuite binds a TLS 1.3 suite to its AEAD and hash (RFC 8446 §B.4).
type cipherSuite struct {
	id      uint16
	keyLen  int
	hashLen int
	newHash func() hash.Hash
	newAEAD func(key []byte) (cipher.AEAD, error)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

var cipherSuites = []*cipherSuite{
	{TLS_AES_128_GCM_SHA256, 16, sha256.Size, sha256.New, newGCM},
	{TLS_AES_256_GCM_SHA384, 32, sha512.Size384, sha512.New384, newGCM},
	{TLS_CHACHA20_POLY1305_SHA256, chacha20poly1305.KeySize, sha256.Size, sha256.New, chacha20poly1305.New},
}

func suiteByID(id uint16) *cipherSuite {
	for _, s := range cipherSuites {
		if s.id == id {
			return s
		}
	}
	return nil
}

// expandLabel is HKDF-Expand-Label (RFC 8446 §7.1).
func (s *cipherSuite) expandLabel(secret []byte, label string, context []byte, length int) []byte {
	info := make([]byte, 0, 2+1+6+len(label)+1+len(context))
	info = append(info, byte(length>>8), byte(length), byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, byte(len(context)))
	info = append(info, context...)
	out, err := hkdf.Expand(s.newHash, secret, string(info), length)
	if err != nil {
		// Only for length > 255*hashLen, which no caller asks for.
		panic("tls13: HKDF-Expand-Label: " + err.Error())
	}
	return out
}

// deriveSecret is Derive-Secret with an already computed transcript hash.
func (s *cipherSuite) deriveSecret(secret []byte, label string, transcriptHash []byte) []byte {
	return s.expandLabel(secret, label, transcriptHash, s.hashLen)
}

// emptyHash returns Transcript-Hash("") for the suite's hash.
func (s *cipherSuite) emptyHash() []byte {
	return s.newHash().Sum(nil)
}

// extract is HKDF-Extract; a nil ikm stands for Hash.length zero bytes.
func (s *cipherSuite) extract(ikm, salt []byte) []byte {
	if ikm == nil {
		ikm = make([]byte, s.hashLen)
	}
	if salt == nil {
		salt = make([]byte, s.hashLen)
	}
	out, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		panic("tls13: HKDF-Extract: " + err.Error())
	}
	return out
}

// earlySecret = HKDF-Extract(0, PSK or zeros).
func (s *cipherSuite) earlySecret(psk []byte) []byte { return s.extract(psk, nil) }

// handshakeSecret = HKDF-Extract(Derive-Secret(early, "derived", ""), (EC)DHE).
func (s *cipherSuite) handshakeSecret(early, shared []byte) []byte {
	return s.extract(shared, s.deriveSecret(early, "derived", s.emptyHash()))
}

// masterSecret = HKDF-Extract(Derive-Secret(hs, "derived", ""), 0).
func (s *cipherSuite) masterSecret(hs []byte) []byte {
	return s.extract(nil, s.deriveSecret(hs, "derived", s.emptyHash()))
}

// binderKey is the resumption binder key of an early secret.
func (s *cipherSuite) binderKey(early []byte) []byte {
	return s.deriveSecret(early, "res binder", s.emptyHash())
}

// finishedMAC is HMAC(finished_key(baseKey), transcriptHash) (§4.4.4).
func (s *cipherSuite) finishedMAC(baseKey, transcriptHash []byte) []byte {
	key := s.expandLabel(baseKey, "finished", nil, s.hashLen)
	m := hmac.New(s.newHash, key)
	m.Write(transcriptHash)
	return m.Sum(nil)
}

// trafficKey derives the AEAD key and IV of a traffic secret (§7.3).
func (s *cipherSuite) trafficKey(secret []byte) (key, iv []byte) {
	return s.expandLabel(secret, "key", nil, s.keyLen), s.expandLabel(secret, "iv", nil, 12)
}

// nextTrafficSecret is application_traffic_secret_N+1 (§7.2).
func (s *cipherSuite) nextTrafficSecret(secret []byte) []byte {
	return s.expandLabel(secret, "traffic upd", nil, s.hashLen)
}

// resumptionPSK derives a ticket's PSK from the resumption master secret.
func (s *cipherSuite) resumptionPSK(resMaster, nonce []byte) []byte {
	return s.expandLabel(resMaster, "resumption", nonce, s.hashLen)
}

// transcript is the running handshake hash (§4.4.1).
type transcript struct {
	h hash.Hash
}

func newTranscript(s *cipherSuite) *transcript { return &transcript{h: s.newHash()} }

func (t *transcript) add(msgs ...[]byte) {
	for _, m := range msgs {
		t.h.Write(m)
	}
}

func (t *transcript) sum() []byte { return t.h.Sum(nil) }

// hashOf returns Hash(data) under the suite's hash.
func (s *cipherSuite) hashOf(data ...[]byte) []byte {
	h := s.newHash()
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(nil)
}

var errSeqOverflow = errors.New("tls13: record sequence number would wrap")
