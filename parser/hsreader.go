package parser

// hsReader reads the bytes of one handshake message that may be split over
// several TLS records, skipping the record headers in between. The record
// headers were validated by helloScan.walkRecords. Reading past the bytes present sets
// short and yields zeros, so the caller checks short before it trusts a
// value.
type hsReader struct {
	b      []byte
	pos    int // next byte to read
	end    int // end of the current record's bytes present: min(recEnd, len(b))
	recEnd int // end of the current record
	short  bool
}

func (r *hsReader) init(b []byte) {
	r.b = b
	r.pos = tlsRecordHeaderLen
	r.recEnd = tlsRecordHeaderLen + int(be16(b[3:5]))
	r.end = min(r.recEnd, len(b))
	r.short = false
}

// nextRecord moves to the next record's bytes; false (and short) when none
// are present.
func (r *hsReader) nextRecord() bool {
	if r.end < r.recEnd || r.recEnd+tlsRecordHeaderLen >= len(r.b) {
		r.short = true
		return false
	}
	r.pos = r.recEnd + tlsRecordHeaderLen
	r.recEnd = r.pos + int(be16(r.b[r.recEnd+3:r.recEnd+5]))
	r.end = min(r.recEnd, len(r.b))
	return true
}

func (r *hsReader) u8() int {
	if r.pos < r.end {
		v := r.b[r.pos]
		r.pos++
		return int(v)
	}
	return r.u8Slow()
}

func (r *hsReader) u8Slow() int {
	for r.pos >= r.end {
		if !r.nextRecord() {
			return 0
		}
	}
	v := r.b[r.pos]
	r.pos++
	return int(v)
}

func (r *hsReader) u16() int {
	if r.end-r.pos >= 2 {
		v := be16(r.b[r.pos : r.pos+2])
		r.pos += 2
		return int(v)
	}
	hi := r.u8Slow()
	lo := r.u8Slow()
	return hi<<8 | lo
}

// skip consumes n bytes.
func (r *hsReader) skip(n int) {
	if r.end-r.pos >= n {
		r.pos += n
		return
	}
	for n > 0 {
		if r.pos >= r.end && !r.nextRecord() {
			return
		}
		k := min(n, r.end-r.pos)
		r.pos += k
		n -= k
	}
}

// contiguous returns the next n bytes as a sub-slice, consuming them, when
// they lie in one record and are present; else nil, consuming nothing.
func (r *hsReader) contiguous(n int) []byte {
	if r.end-r.pos >= n {
		s := r.b[r.pos : r.pos+n : r.pos+n]
		r.pos += n
		return s
	}
	return nil
}

// copyTo reads len(dst) bytes across records into dst; false if short.
func (r *hsReader) copyTo(dst []byte) bool {
	for i := range dst {
		dst[i] = byte(r.u8())
		if r.short {
			return false
		}
	}
	return true
}
