package tls13

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// TicketKeys is the set of keys that seal and open session tickets: the
// current key seals, the current and the previous key open. Servers that
// share the same 32-byte secrets (e.g. a pool behind one VIP) resume each
// other's tickets. It is safe for concurrent use; a key rotated out is
// zeroed.
type TicketKeys struct {
	mu   sync.RWMutex
	keys []*ticketKey // [0] is current; at most two
}

type ticketKey struct {
	name   [16]byte
	aesKey [32]byte
}

const (
	ticketNameLen  = 16
	ticketNonceLen = 12
	ticketVersion  = 1
)

func deriveTicketKey(secret [32]byte) *ticketKey {
	k := &ticketKey{}
	name, err := hkdf.Key(sha256.New, secret[:], nil, "anysched tls13 ticket key name", ticketNameLen)
	if err != nil {
		panic(err)
	}
	key, err := hkdf.Key(sha256.New, secret[:], nil, "anysched tls13 ticket aead key", 32)
	if err != nil {
		panic(err)
	}
	copy(k.name[:], name)
	copy(k.aesKey[:], key)
	clear(key)
	return k
}

func (k *ticketKey) zero() {
	clear(k.aesKey[:])
	clear(k.name[:])
}

// NewTicketKeys builds a key set from the current secret and, optionally,
// the previous one.
func NewTicketKeys(current [32]byte, previous ...[32]byte) *TicketKeys {
	k := &TicketKeys{}
	k.SetKeys(current, previous...)
	return k
}

// NewRandomTicketKeys builds a key set with one fresh random secret.
func NewRandomTicketKeys() (*TicketKeys, error) {
	var s [32]byte
	if _, err := io.ReadFull(rand.Reader, s[:]); err != nil {
		return nil, err
	}
	defer clear(s[:])
	return NewTicketKeys(s), nil
}

// SetKeys replaces the whole set (at most one previous key is kept);
// keys that drop out are zeroed.
func (k *TicketKeys) SetKeys(current [32]byte, previous ...[32]byte) {
	keys := []*ticketKey{deriveTicketKey(current)}
	if len(previous) > 0 {
		keys = append(keys, deriveTicketKey(previous[0]))
	}
	k.mu.Lock()
	old := k.keys
	k.keys = keys
	k.mu.Unlock()
	for _, o := range old {
		o.zero()
	}
}

// Rotate makes next the current key and the current key the previous one;
// the old previous key is zeroed.
func (k *TicketKeys) Rotate(next [32]byte) {
	nk := deriveTicketKey(next)
	k.mu.Lock()
	var out *ticketKey
	keys := []*ticketKey{nk}
	if len(k.keys) > 0 {
		keys = append(keys, k.keys[0])
	}
	if len(k.keys) > 1 {
		out = k.keys[1]
	}
	k.keys = keys
	k.mu.Unlock()
	if out != nil {
		out.zero()
	}
}

// seal encrypts plaintext under the current key: name ‖ nonce ‖ AEAD.
func (k *TicketKeys) seal(plaintext []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if len(k.keys) == 0 {
		return nil, errNoTicketKeys
	}
	key := k.keys[0]
	aead, err := ticketAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, ticketNameLen+ticketNonceLen, ticketNameLen+ticketNonceLen+len(plaintext)+aead.Overhead())
	copy(out, key.name[:])
	if _, err := io.ReadFull(rand.Reader, out[ticketNameLen:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[ticketNameLen:], plaintext, out[:ticketNameLen]), nil
}

// open decrypts a ticket; nil means it is not ours or was tampered with.
func (k *TicketKeys) open(ticket []byte) []byte {
	if len(ticket) < ticketNameLen+ticketNonceLen+16 {
		return nil
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, key := range k.keys {
		if subtle.ConstantTimeCompare(key.name[:], ticket[:ticketNameLen]) != 1 {
			continue
		}
		aead, err := ticketAEAD(key)
		if err != nil {
			return nil
		}
		pt, err := aead.Open(nil, ticket[ticketNameLen:ticketNameLen+ticketNonceLen],
			ticket[ticketNameLen+ticketNonceLen:], ticket[:ticketNameLen])
		if err != nil {
			return nil
		}
		return pt
	}
	return nil
}

// ticketAEAD builds the AEAD per use, so that zeroing aesKey leaves no
// long-lived expanded key schedule behind.
func ticketAEAD(key *ticketKey) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key.aesKey[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// ticketState is what a ticket carries, sealed.
type ticketState struct {
	suite      uint16
	createdAt  time.Time
	lifetime   time.Duration
	ageAdd     uint32
	psk        []byte
	alpn       string
	serverName string
	appData    []byte
}

func (t *ticketState) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(ticketVersion)
	b.AddUint16(t.suite)
	b.AddUint64(uint64(t.createdAt.UnixMilli()))
	b.AddUint32(uint32(t.lifetime / time.Second))
	b.AddUint32(t.ageAdd)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(t.psk) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(t.alpn)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(t.serverName)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(t.appData) })
	return b.Bytes()
}

func (t *ticketState) unmarshal(data []byte) bool {
	s := cryptobyte.String(data)
	var ver uint8
	var created uint64
	var life uint32
	var psk, alpn, sni, app cryptobyte.String
	if !s.ReadUint8(&ver) || ver != ticketVersion || !s.ReadUint16(&t.suite) ||
		!s.ReadUint64(&created) || !s.ReadUint32(&life) || !s.ReadUint32(&t.ageAdd) ||
		!s.ReadUint8LengthPrefixed(&psk) || len(psk) < 32 ||
		!s.ReadUint8LengthPrefixed(&alpn) || !s.ReadUint16LengthPrefixed(&sni) ||
		!s.ReadUint16LengthPrefixed(&app) || !s.Empty() {
		return false
	}
	t.createdAt = time.UnixMilli(int64(created))
	t.lifetime = time.Duration(life) * time.Second
	t.psk, t.alpn, t.serverName, t.appData = psk, string(alpn), string(sni), app
	return suiteByID(t.suite) != nil
}
