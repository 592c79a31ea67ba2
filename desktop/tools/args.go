package tools

import (
	"encoding/json"
	"fmt"
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
	// MaxLen bounds strings (bytes); zero: 256.
	MaxLen int
}

const defaultMaxLen = 256

// Args are a call's checked arguments.
type Args struct {
	ints map[string]int64
	strs map[string]string
}

// newArgs checks raw against d's parameters: every bad argument is an
// error naming it, unknown names included.
func newArgs(d *Def, raw map[string]any) (*Args, error) {
	a := &Args{ints: map[string]int64{}, strs: map[string]string{}}
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
			limit := p.MaxLen
			if limit == 0 {
				limit = defaultMaxLen
			}
			if len(s) > limit {
				return nil, fmt.Errorf("%s is longer than %d bytes", p.Name, limit)
			}
			if len(p.Enum) > 0 && !slices.Contains(p.Enum, s) {
				return nil, fmt.Errorf("%s must be %s, not %q", p.Name, orList(p.Enum), clip(s, 64))
			}
			a.strs[p.Name] = s
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
	return i || s
}

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
		if p.Kind == String {
			limit := p.MaxLen
			if limit == 0 {
				limit = defaultMaxLen
			}
			s["maxLength"] = limit
		}
		props[p.Name] = s
		if p.Required {
			required = append(required, p.Name)
		}
	}
	data, _ := json.Marshal(map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false})
	return data
}
