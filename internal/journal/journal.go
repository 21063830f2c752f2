// Package journal is a small local write-ahead file for records that
// must survive a crash while the database cannot take them: the outbox
// worker keeps there the outcome of an attempt it could not store.
//
// The file has a fixed size, allocated (filled with zeros and synced)
// when it is opened, so that appending never needs more space from the
// filesystem: a journal opened while the disk had room still takes
// records when the disk is full. A record is a key and a payload, put
// (Put) and later marked done (Done); Open returns the records put and
// not done, for the caller to finish. Every Put and Done is synced to
// disk (fsync) before it returns.
//
// On disk, a record is a 4-byte big-endian length n, a 4-byte CRC-32C of
// the n bytes that follow, and the n bytes (JSON: {"op","key","data"}, data in base64),
// always followed by 8 zero bytes that end the journal. Reading stops at
// a zero length, or at a record whose length or checksum is wrong (a write
// torn by a crash). When no record is left open the journal starts again
// from the beginning of the file.
package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
)

// DefaultSize is the size of a journal file when Open is given 0.
const DefaultSize = 8 << 20

// headerSize is a record's length and checksum.
const headerSize = 8

// ErrFull is returned by Put when the record does not fit in what is
// left of the file.
var ErrFull = errors.New("journal: full")

// castagnoli returns the CRC-32C table. crc32 builds it once, at the first
// call, not when the program starts (a package-level table would cost
// every start of the binary, "sockmail send" included, about 0.1 ms).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// Journal is an open journal file. It is safe for concurrent use.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	size int64
	end  int64           // where the next record goes
	open map[string]bool // keys put and not done
	// found are the records open when the file was opened.
	found map[string][]byte
}

// record is a record's payload.
type record struct {
	Op   string `json:"op"` // "put" or "done"
	Key  string `json:"key"`
	Data []byte `json:"data,omitempty"`
}

// Open opens or creates the journal at path with the given size in bytes
// (DefaultSize if 0; an existing larger file keeps its size), allocates
// it, and reads the records it holds. The file is locked (flock) while
// it is open: a second process opening it gets an error.
func Open(path string, size int64) (*Journal, error) {
	if size <= 0 {
		size = DefaultSize
	}
	if size < 4*headerSize {
		return nil, fmt.Errorf("journal: size %d is too small", size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		return nil, err
	}
	j := &Journal{f: f, size: size, open: map[string]bool{}, found: map[string][]byte{}}
	if err := j.allocate(); err != nil {
		f.Close()
		return nil, err
	}
	if err := j.read(); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// allocate makes the file size bytes long with its blocks allocated.
func (j *Journal) allocate() error {
	st, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("journal: stat: %w", err)
	}
	if st.Size() >= j.size {
		j.size = st.Size()
		return nil
	}
	zeros := make([]byte, 64<<10)
	for off := st.Size(); off < j.size; {
		n := min(int64(len(zeros)), j.size-off)
		if _, err := j.f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("journal: allocate %d bytes: %w", j.size, err)
		}
		off += n
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: allocate: sync: %w", err)
	}
	return nil
}

// read scans the records and sets end, open and found.
func (j *Journal) read() error {
	var hdr [headerSize]byte
	off := int64(0)
	for off+headerSize <= j.size {
		if _, err := j.f.ReadAt(hdr[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("journal: read: %w", err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		if n == 0 || off+headerSize+n > j.size {
			break
		}
		buf := make([]byte, n)
		if _, err := j.f.ReadAt(buf, off+headerSize); err != nil {
			return fmt.Errorf("journal: read: %w", err)
		}
		if crc32.Checksum(buf, castagnoli()) != binary.BigEndian.Uint32(hdr[4:]) {
			break // torn by a crash: nothing after it was acknowledged
		}
		var r record
		if err := json.Unmarshal(buf, &r); err != nil {
			break
		}
		switch r.Op {
		case "put":
			j.open[r.Key], j.found[r.Key] = true, r.Data
		case "done":
			delete(j.open, r.Key)
			delete(j.found, r.Key)
		}
		off += headerSize + n
	}
	j.end = off
	if len(j.open) == 0 {
		return j.reset()
	}
	return nil
}

// reset starts the journal again at the beginning of the file.
func (j *Journal) reset() error {
	if _, err := j.f.WriteAt(make([]byte, headerSize), 0); err != nil {
		return fmt.Errorf("journal: reset: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: reset: sync: %w", err)
	}
	j.end = 0
	return nil
}

// Found returns the records that were put and not done when the journal
// was opened, by key, less those marked done since.
func (j *Journal) Found() map[string][]byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make(map[string][]byte, len(j.found))
	for k, v := range j.found {
		out[k] = v
	}
	return out
}

// Len returns how many records are put and not done.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.open)
}

// Put appends a record and syncs it. It fails with ErrFull when the
// record does not fit.
func (j *Journal) Put(key string, data []byte) error {
	return j.append(record{Op: "put", Key: key, Data: data})
}

// Done marks the record of key finished and syncs it; a key not open is
// ignored. When no record is left open the file starts again.
func (j *Journal) Done(key string) error {
	j.mu.Lock()
	open := j.open[key]
	j.mu.Unlock()
	if !open {
		return nil
	}
	return j.append(record{Op: "done", Key: key})
}

func (j *Journal) append(r record) error {
	payload, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: encode: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal: closed")
	}
	if r.Op == "done" && len(j.open) == 1 && j.open[r.Key] {
		// The last open record: start again instead of appending.
		delete(j.open, r.Key)
		delete(j.found, r.Key)
		return j.reset()
	}
	n := int64(len(payload))
	if j.end+headerSize+n+headerSize > j.size {
		return fmt.Errorf("%w: a record of %d bytes does not fit in the %d left of %d", ErrFull, n, j.size-j.end-2*headerSize, j.size)
	}
	buf := make([]byte, headerSize+n+headerSize) // the record, then the end mark
	binary.BigEndian.PutUint32(buf[:4], uint32(n))
	binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(payload, castagnoli()))
	copy(buf[headerSize:], payload)
	if _, err := j.f.WriteAt(buf, j.end); err != nil {
		return fmt.Errorf("journal: write: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: sync: %w", err)
	}
	j.end += headerSize + n
	switch r.Op {
	case "put":
		j.open[r.Key] = true
	case "done":
		delete(j.open, r.Key)
		delete(j.found, r.Key)
	}
	return nil
}

// Close closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	if err != nil {
		return fmt.Errorf("journal: close: %w", err)
	}
	return nil
}
