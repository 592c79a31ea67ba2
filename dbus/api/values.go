package api

import "github.com/godbus/dbus/v5"

// Options turns plain Go values into an a{sv} dictionary.
func Options(m map[string]any) map[string]dbus.Variant {
	out := make(map[string]dbus.Variant, len(m))
	for k, v := range m {
		out[k] = dbus.MakeVariant(v)
	}
	return out
}

// Plain unwraps variants recursively, for JSON output.
func Plain(v any) any {
	switch t := v.(type) {
	case dbus.Variant:
		return Plain(t.Value())
	case map[string]dbus.Variant:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = Plain(x)
		}
		return out
	case []map[string]dbus.Variant:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = Plain(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = Plain(x)
		}
		return out
	default:
		return v
	}
}

// Uint reads an unsigned number from a D-Bus value (a Variant or a plain
// value of any integer type; 0 otherwise, and for negative numbers).
func Uint(v any) uint64 {
	if vv, ok := v.(dbus.Variant); ok {
		v = vv.Value()
	}
	switch n := v.(type) {
	case uint64:
		return n
	case uint32:
		return uint64(n)
	case int32:
		if n >= 0 {
			return uint64(n)
		}
	case int64:
		if n >= 0 {
			return uint64(n)
		}
	case float64:
		if n >= 0 {
			return uint64(n)
		}
	}
	return 0
}

// String reads a string from a D-Bus value ("" if it is none).
func String(v any) string {
	if vv, ok := v.(dbus.Variant); ok {
		v = vv.Value()
	}
	s, _ := v.(string)
	return s
}
