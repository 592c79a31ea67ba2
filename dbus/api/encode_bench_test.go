package api

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"
)

// getAllBody is a GetAll reply like npllmd's: the scalar properties, and
// optionally 14 Sensors rows with counters in their details (as before
// GetSensorDetails) or without.
func getAllBody(sensors bool, countersPerRow int) map[string]dbus.Variant {
	m := map[string]dbus.Variant{
		"Version": dbus.MakeVariant("0.1.0-dev"), "Health": dbus.MakeVariant("ok"),
		"LoadAverage": dbus.MakeVariant(struct{ A, B, C float64 }{1, 2, 3}), "CPUUsage": dbus.MakeVariant(1.5),
		"MemoryTotal": dbus.MakeVariant(uint64(1)), "MemoryAvailable": dbus.MakeVariant(uint64(1)),
		"SwapTotal": dbus.MakeVariant(uint64(1)), "SwapFree": dbus.MakeVariant(uint64(1)),
		"Pressure":     dbus.MakeVariant(map[string]struct{ A, B, C float64 }{"cpu": {}, "io": {}, "memory": {}}),
		"ActiveAlerts": dbus.MakeVariant([]map[string]dbus.Variant{}),
	}
	if sensors {
		rows := make([]SensorStatus, 0, 14)
		for range 14 {
			d := map[string]dbus.Variant{}
			for j := range countersPerRow {
				d[fmt.Sprintf("counter_%d", j)] = dbus.MakeVariant(uint64(j))
			}
			rows = append(rows, SensorStatus{"block_io_latency", "tp_btf", "running", d})
		}
		m["Sensors"] = dbus.MakeVariant(rows)
	}
	return m
}

// BenchmarkEncodeGetAllReply is the server's share of a GetAll: godbus
// encodes a reply twice (CountFds, then EncodeTo), by reflection.
func BenchmarkEncodeGetAllReply(b *testing.B) {
	for _, c := range []struct {
		name string
		body []any
	}{
		{"empty(Ping)", nil},
		{"scalars", []any{getAllBody(false, 0)}},
		{"sensors-slim", []any{getAllBody(true, 0)}},
		{"sensors-10-counters", []any{getAllBody(true, 10)}},
	} {
		b.Run(c.name, func(b *testing.B) { encodeReply(b, c.body) })
	}
}

// BenchmarkEncodeSensorDetails compares GetSensorDetails' a{s(sa{st})}
// with the a{sa{sv}} first drafted (14 sensors × description + 8 counters).
func BenchmarkEncodeSensorDetails(b *testing.B) {
	sv := map[string]map[string]dbus.Variant{}
	st := map[string]SensorDetails{}
	for i := range 14 {
		n, desc := fmt.Sprintf("sensor_%d", i), "what this sensor watches, in about sixty characters of text"
		sv[n] = map[string]dbus.Variant{"description": dbus.MakeVariant(desc)}
		c := map[string]uint64{}
		for j := range 8 {
			k := fmt.Sprintf("counter_%d", j)
			sv[n][k], c[k] = dbus.MakeVariant(uint64(j)), uint64(j)
		}
		st[n] = SensorDetails{desc, c}
	}
	for _, c := range []struct {
		name string
		body []any
	}{{"a{sa{sv}}", []any{sv}}, {"a{s(sa{st})}", []any{st}}} {
		b.Run(c.name, func(b *testing.B) { encodeReply(b, c.body) })
	}
}

// encodeReply encodes a reply as godbus's SendMessage does: CountFds, then
// EncodeTo.
func encodeReply(b *testing.B, body []any) {
	msg := &dbus.Message{Type: dbus.TypeMethodReply, Body: body, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(uint32(1)), dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...))}}
	var size int
	for b.Loop() {
		if _, err := msg.CountFds(); err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size), "bytes")
}
