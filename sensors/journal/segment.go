package journal

// Segment files hold the journal, one after another, in <state>/journal/:
//
//	<first seq as 16 hex digits>.seg:
//	  header: "npjrnl01" | first seq (u64 LE)
//	  frames: payload length (u32 LE) | CRC-32C of the payload (u32 LE) | payload
//
// Record i of a segment has seq first+i: a gap in the seqs (a restart after
// a crash, events the disk refused and that were dropped) starts a new
// segment. The length and CRC let a scan at open find where a torn write
// (power loss mid-append) or a damaged block begins. A segment's index is
// kept in memory and rebuilt by that scan: frame offsets, postings by kind,
// uid and pid, and the latest time per block of records for time seeks.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
	"time"
)

const (
	segMagic       = "npjrnl01"
	segHeaderLen   = 16
	frameHeaderLen = 8
	maxRecord      = 1 << 20 // an event is a few hundred bytes; argv is bounded by the sensor
	maxSegmentSize = 64 << 20
	maxSegEvents   = 1 << 15 // record indexes are uint16
	timeBlock      = 64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errBadHeader = errors.New("bad segment header")
	errTorn      = errors.New("torn or damaged record")
)

type segment struct {
	path  string
	f     *os.File
	first uint64 // seq of record 0
	size  int64  // end of the last indexed record
	// born is when the segment was started, by the wall clock (for rolling
	// by age: event times may be old, e.g. migrated ones); maxTime the
	// latest event time up to the end of this segment, including earlier
	// segments (so it never decreases from segment to segment).
	born     time.Time
	maxTime  uint64
	offs     []uint32   // frame offset of each record
	blockMax []uint64   // latest time of records 0..(k+1)*timeBlock-1
	kinds    [][]uint16 // record indexes by kind id (Journal.kindIDs)
	uids     map[uint32]*[]uint16
	// pidCol is each record's pid while the segment is written (a pid
	// query scans it: at most one segment's worth); sealing turns it into
	// (pid, record) pairs sorted by pid for binary search.
	pidCol  []uint32
	sealed  bool
	pidKeys []uint32
	pidRecs []uint16
}

func segmentName(first uint64) string { return fmt.Sprintf("%016x.seg", first) }

func newSegment(path string, f *os.File, first, prevMax uint64) *segment {
	return &segment{path: path, f: f, first: first, size: segHeaderLen, maxTime: prevMax, born: time.Now(),
		uids: map[uint32]*[]uint16{}}
}

func (s *segment) n() int { return len(s.offs) }

// next is the seq the segment's next record must have.
func (s *segment) next() uint64 { return s.first + uint64(len(s.offs)) }

// add indexes the record whose frame starts at off.
func (s *segment) add(h *header, kind uint16, off int64) {
	i := uint16(len(s.offs))
	s.offs = append(s.offs, uint32(off))
	s.maxTime = max(s.maxTime, h.timeNS)
	if int(i)%timeBlock == 0 {
		s.blockMax = append(s.blockMax, s.maxTime)
	} else {
		s.blockMax[len(s.blockMax)-1] = s.maxTime
	}
	for int(kind) >= len(s.kinds) {
		s.kinds = append(s.kinds, nil)
	}
	s.kinds[kind] = append(s.kinds[kind], i)
	if h.hasUID {
		p := s.uids[h.uid]
		if p == nil {
			p = new([]uint16)
			s.uids[h.uid] = p
		}
		*p = append(*p, i)
	}
	s.pidCol = append(s.pidCol, h.pid)
}

func (s *segment) kindPostings(kind uint16, ok bool) []uint16 {
	if !ok || int(kind) >= len(s.kinds) {
		return nil
	}
	return s.kinds[kind]
}

func (s *segment) uidPostings(uid uint32) []uint16 {
	if p := s.uids[uid]; p != nil {
		return *p
	}
	return nil
}

// seal compacts the pid index once nothing more is appended.
func (s *segment) seal() {
	if s.sealed {
		return
	}
	pairs := make([]uint64, len(s.pidCol))
	for i, pid := range s.pidCol {
		pairs[i] = uint64(pid)<<16 | uint64(i)
	}
	slices.Sort(pairs)
	s.pidKeys = make([]uint32, len(pairs))
	s.pidRecs = make([]uint16, len(pairs))
	for k, p := range pairs {
		s.pidKeys[k], s.pidRecs[k] = uint32(p>>16), uint16(p)
	}
	s.pidCol, s.sealed = nil, true
}

// unseal makes a sealed segment appendable again (the last one at open).
func (s *segment) unseal() {
	if !s.sealed {
		return
	}
	s.pidCol = make([]uint32, len(s.offs))
	for k, pid := range s.pidKeys {
		s.pidCol[s.pidRecs[k]] = pid
	}
	s.pidKeys, s.pidRecs, s.sealed = nil, nil, false
}

func (s *segment) pidPostings(pid uint32) []uint16 {
	if !s.sealed {
		var out []uint16
		for i, p := range s.pidCol {
			if p == pid {
				out = append(out, uint16(i))
			}
		}
		return out
	}
	lo := sort.Search(len(s.pidKeys), func(i int) bool { return s.pidKeys[i] >= pid })
	hi := lo
	for hi < len(s.pidKeys) && s.pidKeys[hi] == pid {
		hi++
	}
	return s.pidRecs[lo:hi]
}

// recordsFrom is the first record index at or after seq.
func (s *segment) recordsFrom(seq uint64) int {
	if seq <= s.first {
		return 0
	}
	return int(min(seq-s.first, uint64(len(s.offs))))
}

// timeFrom is the first record that may be at or after t.
func (s *segment) timeFrom(t uint64) int {
	k := sort.Search(len(s.blockMax), func(k int) bool { return s.blockMax[k] >= t })
	return k * timeBlock
}

// end is where record i ends (i < n).
func (s *segment) end(i int) int64 {
	if i+1 < len(s.offs) {
		return int64(s.offs[i+1])
	}
	return s.size
}

// createSegment starts an empty segment file; a file it could not finish
// is removed.
func createSegment(dir string, first, prevMax uint64) (*segment, error) {
	path := dir + "/" + segmentName(first)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	hdr := binary.LittleEndian.AppendUint64([]byte(segMagic), first)
	if _, err := f.WriteAt(hdr, 0); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create segment: %w", err)
	}
	return newSegment(path, f, first, prevMax), nil
}

// appendFrames writes frames at the end with one pwrite. A short write
// (disk full) is cut off again, so the file never keeps half a batch.
func (s *segment) appendFrames(buf []byte) error {
	if _, err := s.f.WriteAt(buf, s.size); err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			return fmt.Errorf("%w (and cutting the partial write: %v)", err, terr)
		}
		return err
	}
	return nil
}

// scanSegment opens a segment and indexes its records up to the first bad
// frame. It returns the segment (nil when even the header is bad) and why
// it stopped early (nil when the whole file is good).
func scanSegment(path string, wantFirst, prevMax uint64, kindID func([]byte) uint16) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	var hdr [segHeaderLen]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || string(hdr[:8]) != segMagic || binary.LittleEndian.Uint64(hdr[8:]) != wantFirst {
		f.Close()
		return nil, errBadHeader
	}
	s := newSegment(path, f, wantFirst, prevMax)
	s.born = st.ModTime() // the last write: a reopened segment is not kept open for long
	br := bufio.NewReaderSize(f, 256<<10)
	var fh [frameHeaderLen]byte
	buf := make([]byte, 0, 4096)
	for off := int64(segHeaderLen); off < st.Size(); {
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			return s, fmt.Errorf("%w at offset %d: frame header cut short", errTorn, off)
		}
		n := int64(binary.LittleEndian.Uint32(fh[:4]))
		if n == 0 || n > maxRecord || off+frameHeaderLen+n > st.Size() {
			return s, fmt.Errorf("%w at offset %d: length %d", errTorn, off, n)
		}
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return s, fmt.Errorf("%w at offset %d: %v", errTorn, off, err)
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(fh[4:]) {
			return s, fmt.Errorf("%w at offset %d: checksum mismatch", errTorn, off)
		}
		h, err := decodeHeader(buf)
		if err != nil || h.seq != s.next() || len(s.offs) >= maxSegEvents {
			return s, fmt.Errorf("%w at offset %d: record is not seq %d", errTorn, off, s.next())
		}
		s.add(&h, kindID(h.kind), off)
		off += frameHeaderLen + n
		s.size = off
	}
	return s, nil
}

// segReader reads records of one segment, a range at a time: span records
// per read for sequential scans, 1 for sparse index hits.
type segReader struct {
	s      *segment
	span   int
	lo, hi int // records buffered
	buf    []byte
}

func (r *segReader) payload(i int) ([]byte, error) {
	if i < r.lo || i >= r.hi {
		hi := min(i+r.span, r.s.n())
		start := int64(r.s.offs[i])
		r.buf = slices.Grow(r.buf[:0], int(r.s.end(hi-1)-start))[:r.s.end(hi-1)-start]
		if _, err := r.s.f.ReadAt(r.buf, start); err != nil {
			return nil, err
		}
		r.lo, r.hi = i, hi
	}
	frame := r.buf[int64(r.s.offs[i])-int64(r.s.offs[r.lo]) : r.s.end(i)-int64(r.s.offs[r.lo])]
	if len(frame) < frameHeaderLen {
		return nil, errTorn
	}
	p := frame[frameHeaderLen:]
	if int(binary.LittleEndian.Uint32(frame)) != len(p) || crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(frame[4:]) {
		return nil, errTorn
	}
	return p, nil
}
