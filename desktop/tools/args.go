package tools

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Kind is a parameter's JSON type.
type Kind string

const (
	Integer Kind = "integer"
	String  Kind = "string"
	// Map is an object of names to strings (integers are taken as their
	// decimal text): try_tuning's knob → value.
	Map Kind = "object"
	// List is an array of strings.
	List Kind = "array"
)

// Param is one argument of a tool: its schema and its check are this one
// declaration.
type Param struct {
	Name        string
	Kind        Kind
	Required    bool
	Description string
	Min, Max    float64 // integers; both zero: unbounded
	Enum        []string
	Default     any
	// MaxLen bounds strings, and a Map's keys and values, a List's items
	// (bytes); zero: 256.
	MaxLen int
	// MaxItems bounds a Map's entries or a List's items; zero: 16. A
	// required Map or List must not be empty.
	MaxItems int
}

const defaultMaxItems = 16

func (p Param) maxLen() int {
	if p.MaxLen == 0 {
		return defaultMaxLen
	}
	return p.MaxLen
}

func (p Param) maxItems() int {
	if p.MaxItems == 0 {
		return defaultMaxItems
	}
	return p.MaxItems
}

const defaultMaxLen = 256

// Args are a call's checked arguments.
type Args struct {
	ints  map[string]int64
	strs  map[string]string
	maps  map[string]map[string]string
	lists map[string][]string
}

// newArgs checks raw against d's parameters: every bad argument is an
// error naming it, unknown names included.
func newArgs(d *Def, raw map[string]any) (*Args, error) {
	a := &Args{ints: map[string]int64{}, strs: map[string]string{}, maps: map[string]map[string]string{}, lists: map[string][]string{}}
	for k := range raw {
		if !slices.ContainsFunc(d.Params, func(p Param) bool { return p.Name == k }) {
			return nil, fmt.Errorf("unknown argument %q: %s takes %s", clip(k, 64), d.Name, paramNames(d))
		}
	}
	for _, p := range d.Params {
		v, ok := raw[p.Name]
		if !ok || v == nil {
			if p.Required {
				return nil, fmt.Errorf("%s is required%s", p.Name, hint(p))
			}
			continue
		}
		switch p.Kind {
		case Integer:
			n, err := integer(p, v)
			if err != nil {
				return nil, err
			}
			a.ints[p.Name] = n
		case String:
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s must be a string, not %s", p.Name, clip(fmt.Sprint(v), 64))
			}
			if len(s) > p.maxLen() {
				return nil, fmt.Errorf("%s is longer than %d bytes", p.Name, p.maxLen())
			}
			if len(p.Enum) > 0 && !slices.Contains(p.Enum, s) {
				return nil, fmt.Errorf("%s must be %s, not %q", p.Name, orList(p.Enum), clip(s, 64))
			}
			a.strs[p.Name] = s
		case Map:
			m, err := stringMap(p, v)
			if err != nil {
				return nil, err
			}
			a.maps[p.Name] = m
		case List:
			l, err := stringList(p, v)
			if err != nil {
				return nil, err
			}
			a.lists[p.Name] = l
		}
	}
	return a, nil
}

func integer(p Param, v any) (int64, error) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case json.Number:
		x, err := n.Float64()
		if err != nil {
			return 0, fmt.Errorf("%s must be an integer, not %s", p.Name, clip(n.String(), 64))
		}
		f = x
	case string:
		x, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return 0, fmt.Errorf("%s must be an integer, not %q", p.Name, clip(n, 64))
		}
		f = x
	default:
		return 0, fmt.Errorf("%s must be an integer, not %s", p.Name, clip(fmt.Sprint(v), 64))
	}
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s must be an integer, not %v", p.Name, f)
	}
	if (p.Min != 0 || p.Max != 0) && (f < p.Min || f > p.Max) {
		return 0, fmt.Errorf("%s must be an integer from %.0f to %.0f, not %v", p.Name, p.Min, p.Max, f)
	}
	return int64(f), nil
}

// stringMap checks an object of names to strings or integers.
func stringMap(p Param, v any) (map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) > p.maxItems() || p.Required && len(m) == 0 {
		return nil, fmt.Errorf("%s must be an object of %s name → value pairs%s", p.Name, itemRange(p), hint(p))
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) { // the first bad one, always the same
		if err := printable(p, "a name in "+p.Name, k); err != nil {
			return nil, err
		}
		var s string
		switch x := m[k].(type) {
		case string:
			s = x
		default:
			n, err := integer(Param{Name: "the value of " + clip(k, 64)}, x)
			if err != nil {
				return nil, fmt.Errorf("the value of %s in %s must be a string or an integer, not %s", clip(k, 64), p.Name, clip(fmt.Sprint(x), 64))
			}
			s = strconv.FormatInt(n, 10)
		}
		if err := printable(p, "the value of "+clip(k, 64), s); err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, nil
}

// stringList checks an array of strings.
func stringList(p Param, v any) ([]string, error) {
	l, ok := v.([]any)
	if !ok || len(l) > p.maxItems() || p.Required && len(l) == 0 {
		return nil, fmt.Errorf("%s must be a list of %s names%s", p.Name, itemRange(p), hint(p))
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%s must be a list of strings, not %s", p.Name, clip(fmt.Sprint(x), 64))
		}
		if err := printable(p, "an item of "+p.Name, s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// printable bounds a name or value inside a Map or List: not empty, at
// most MaxLen bytes, no control characters (they are echoed in texts).
func printable(p Param, what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > p.maxLen():
		return fmt.Errorf("%s is longer than %d bytes", what, p.maxLen())
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%s contains a control character: %q", what, clip(s, 64))
	}
	return nil
}

func itemRange(p Param) string {
	if p.Required {
		return fmt.Sprintf("1 to %d", p.maxItems())
	}
	return fmt.Sprintf("at most %d", p.maxItems())
}

// Int is an integer argument, or def when absent.
func (a *Args) Int(name string, def int64) int64 {
	if v, ok := a.ints[name]; ok {
		return v
	}
	return def
}

// Has says whether an argument was given.
func (a *Args) Has(name string) bool {
	_, i := a.ints[name]
	_, s := a.strs[name]
	_, m := a.maps[name]
	_, l := a.lists[name]
	return i || s || m || l
}

// Map is a Map argument (nil when absent).
func (a *Args) Map(name string) map[string]string { return a.maps[name] }

// List is a List argument (nil when absent).
func (a *Args) List(name string) []string { return a.lists[name] }

// Str is a string argument, or def when absent.
func (a *Args) Str(name, def string) string {
	if v, ok := a.strs[name]; ok {
		return v
	}
	return def
}

func hint(p Param) string {
	switch {
	case len(p.Enum) > 0:
		return ": " + orList(p.Enum)
	case p.Description != "":
		return ": " + p.Description
	}
	return ""
}

func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func paramNames(d *Def) string {
	if len(d.Params) == 0 {
		return "no arguments"
	}
	names := make([]string, len(d.Params))
	for i, p := range d.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// clip bounds caller text echoed in errors.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// InputSchema is the JSON Schema of d's arguments (both doors offer it).
func (d *Def) InputSchema() json.RawMessage {
	props := map[string]any{}
	required := []string{}
	for _, p := range d.Params {
		s := map[string]any{"type": string(p.Kind)}
		if p.Description != "" {
			s["description"] = p.Description
		}
		if p.Min != 0 || p.Max != 0 {
			s["minimum"], s["maximum"] = p.Min, p.Max
		}
		if len(p.Enum) > 0 {
			s["enum"] = p.Enum
		}
		if p.Default != nil {
			s["default"] = p.Default
		}
		switch p.Kind {
		case String:
			s["maxLength"] = p.maxLen()
		case Map:
			s["additionalProperties"] = map[string]any{"type": []string{"string", "integer"}, "minLength": 1, "maxLength": p.maxLen()}
			s["propertyNames"] = map[string]any{"minLength": 1, "maxLength": p.maxLen()}
			s["maxProperties"] = p.maxItems()
			if p.Required {
				s["minProperties"] = 1
			}
		case List:
			s["items"] = map[string]any{"type": "string", "minLength": 1, "maxLength": p.maxLen()}
			s["maxItems"] = p.maxItems()
			if p.Required {
				s["minItems"] = 1
			}
		}
		props[p.Name] = s
		if p.Required {
			required = append(required, p.Name)
		}
	}
	data, _ := json.Marshal(map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false})
	return data
}
