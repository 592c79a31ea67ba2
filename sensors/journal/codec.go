package journal

// codec.go is the only file that knows an event's body: how one event is
// encoded into a record's payload and back, which header fields the
// indexes read, and which events are urgent. Framing, segments and
// indexes live elsewhere and see payloads as bytes.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

// header is what the indexes need of a record, read without decoding its
// fields.
type header struct {
	seq, timeNS uint64
	kind        []byte // aliases the payload
	pid, uid    uint32
	hasUID      bool
}

func decodeHeader(data []byte) (header, error) {
	r := &reader{b: data}
	if r.byte() != formatV1 {
		return header{}, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	h := header{seq: r.uvarint(), timeNS: r.uvarint()}
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return header{}, errCorrupt
	}
	h.kind, r.b = r.b[:n], r.b[n:]
	h.pid = uint32(r.uvarint())
	h.hasUID = r.byte() == 1
	h.uid = uint32(r.uvarint())
	return h, r.err
}

// crashSignals end a process in a way that is a crash (the alert engine's
// list): such an exit is urgent.
var crashSignals = map[uint32]bool{4: true, 6: true, 7: true, 8: true, 11: true}

// urgent events are written and fsynced at once instead of waiting for the
// group commit and the sync interval: they are what an administrator looks
// for after a power loss, and what alerts are raised from.
func urgent(ev *sensors.Event) bool {
	switch ev.Kind {
	case api.KindOOMKill, api.KindUnitFailed, api.KindProcessCrash:
		return true
	case api.KindProcessExit:
		return ev.Exit != nil && (ev.Exit.CoreDumped || crashSignals[ev.Exit.Signal])
	}
	return false
}

// Stored form: a compact binary record (format byte 1), each field tagged
// with its D-Bus type so values come back with the type they went in with:
//
//	1 | uvarint seq | uvarint time_ns | str kind | uvarint pid | byte has_uid |
//	uvarint uid | uvarint n | n × (str key | byte sig | value)
//
// where str is uvarint length + bytes, u/t values are uvarints, i/x are
// varints, b is one byte and as is uvarint count + strs.
const formatV1 = 1

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func encode(ev *sensors.Event) ([]byte, error) {
	return appendEncoded(make([]byte, 0, 128), ev)
}

// appendEncoded appends ev's payload to b; on error b's contents beyond
// its old length are garbage.
func appendEncoded(b []byte, ev *sensors.Event) ([]byte, error) {
	b = append(b, formatV1)
	b = binary.AppendUvarint(b, ev.Seq)
	b = binary.AppendUvarint(b, ev.TimeNS)
	b = appendStr(b, ev.Kind)
	b = binary.AppendUvarint(b, uint64(ev.PID))
	has := byte(0)
	if ev.HasUID {
		has = 1
	}
	b = append(b, has)
	b = binary.AppendUvarint(b, uint64(ev.UID))
	// The typed event's a{sv} keys and values, without building a map; a
	// kind has far fewer than 128 fields, so their count is one uvarint
	// byte, patched in at the end.
	countAt := len(b)
	b = append(b, 0)
	n := 0
	var err error
	ev.EachField(func(k string, v any) {
		n++
		b = appendStr(b, k)
		switch x := v.(type) {
		case uint32:
			b = binary.AppendUvarint(append(b, 'u'), uint64(x))
		case uint64:
			b = binary.AppendUvarint(append(b, 't'), x)
		case int32:
			b = binary.AppendVarint(append(b, 'i'), int64(x))
		case int64:
			b = binary.AppendVarint(append(b, 'x'), x)
		case string:
			b = appendStr(append(b, 's'), x)
		case bool:
			c := byte(0)
			if x {
				c = 1
			}
			b = append(b, 'b', c)
		case []string:
			b = binary.AppendUvarint(append(b, 'a'), uint64(len(x)))
			for _, s := range x {
				b = appendStr(b, s)
			}
		default:
			err = fmt.Errorf("field %s of %s has unsupported type %T", k, ev.Kind, v)
		}
	})
	if err != nil {
		return nil, err
	}
	if n >= 0x80 {
		return nil, fmt.Errorf("%s has %d fields", ev.Kind, n)
	}
	b[countAt] = byte(n)
	return b, nil
}

var errCorrupt = errors.New("corrupt journal record")

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = errCorrupt, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = errCorrupt, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = errCorrupt, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func decode(data []byte) (sensors.Event, error) {
	r := &reader{b: data}
	if r.byte() != formatV1 {
		return sensors.Event{}, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	ev := sensors.Event{Seq: r.uvarint(), TimeNS: r.uvarint(), Kind: r.str(), PID: uint32(r.uvarint())}
	ev.HasUID = r.byte() == 1
	ev.UID = uint32(r.uvarint())
	n := r.uvarint()
	if n > uint64(len(data)) {
		return sensors.Event{}, errCorrupt
	}
	fields := make(map[string]any, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.str()
		switch sig := r.byte(); sig {
		case 'u':
			fields[k] = uint32(r.uvarint())
		case 't':
			fields[k] = r.uvarint()
		case 'i':
			fields[k] = int32(r.varint())
		case 'x':
			fields[k] = r.varint()
		case 's':
			fields[k] = r.str()
		case 'b':
			fields[k] = r.byte() == 1
		case 'a':
			m := r.uvarint()
			if m > uint64(len(data)) {
				return sensors.Event{}, errCorrupt
			}
			list := make([]string, 0, m)
			for j := uint64(0); j < m; j++ {
				list = append(list, r.str())
			}
			fields[k] = list
		default:
			return sensors.Event{}, fmt.Errorf("%w: field %s has type %q", errCorrupt, k, sig)
		}
	}
	if r.err != nil {
		return sensors.Event{}, r.err
	}
	// The record's header is what the indexes filter on: SetFields infers
	// HasUID for a{sv} without one, the header knows it.
	hasUID := ev.HasUID
	if err := ev.SetFields(fields); err != nil {
		return sensors.Event{}, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	ev.HasUID = hasUID
	return ev, nil
}
