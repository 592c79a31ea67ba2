package api

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/godbus/dbus/v5"
)

// The records below share one a{sv} codec: a field's key is its json tag
// (so npllmctl --json and MCP show the wire's names), ",omitempty" leaves
// zero values out, a pointer to a record is a nested a{sv}, and decoding
// checks every present key's type exactly (unknown keys are ignored: a
// newer npllmd may add some). A slice of records is an aa{sv}.

func encodeRecord(rec any) map[string]dbus.Variant {
	v := reflect.ValueOf(rec).Elem()
	t := v.Type()
	m := make(map[string]dbus.Variant, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		key, omit, ok := tagOf(t.Field(i))
		if !ok {
			continue
		}
		f := v.Field(i)
		if omit && f.IsZero() {
			continue
		}
		if f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct {
			if f.IsNil() {
				continue
			}
			m[key] = dbus.MakeVariant(encodeRecord(f.Interface()))
			continue
		}
		if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct {
			list := make([]map[string]dbus.Variant, f.Len())
			for j := range list {
				list[j] = encodeRecord(f.Index(j).Addr().Interface())
			}
			m[key] = dbus.MakeVariant(list)
			continue
		}
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				continue
			}
			f = f.Elem()
		}
		m[key] = dbus.MakeVariant(f.Interface())
	}
	return m
}

func decodeRecord(m map[string]dbus.Variant, rec any, what string) error {
	v := reflect.ValueOf(rec).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key, _, ok := tagOf(t.Field(i))
		if !ok {
			continue
		}
		val, present := m[key]
		if !present {
			continue
		}
		f := v.Field(i)
		x := reflect.ValueOf(val.Value())
		switch {
		case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
			sub, ok := val.Value().(map[string]dbus.Variant)
			if !ok {
				return fmt.Errorf("%s: %q is %s, want a{sv}", what, key, val.Signature())
			}
			p := reflect.New(f.Type().Elem())
			if err := decodeRecord(sub, p.Interface(), what+"."+key); err != nil {
				return err
			}
			f.Set(p)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			subs, ok := val.Value().([]map[string]dbus.Variant)
			if !ok {
				return fmt.Errorf("%s: %q is %s, want aa{sv}", what, key, val.Signature())
			}
			list := reflect.MakeSlice(f.Type(), len(subs), len(subs))
			for j, sub := range subs {
				if err := decodeRecord(sub, list.Index(j).Addr().Interface(), fmt.Sprintf("%s.%s[%d]", what, key, j)); err != nil {
					return err
				}
			}
			f.Set(list)
		case f.Kind() == reflect.Pointer:
			if !x.IsValid() || x.Type() != f.Type().Elem() {
				return fmt.Errorf("%s: %q is %s, want %s", what, key, val.Signature(), f.Type().Elem())
			}
			p := reflect.New(f.Type().Elem())
			p.Elem().Set(x)
			f.Set(p)
		default:
			if !x.IsValid() || x.Type() != f.Type() {
				return fmt.Errorf("%s: %q is %s, want %s", what, key, val.Signature(), f.Type())
			}
			f.Set(x)
		}
	}
	return nil
}

func tagOf(f reflect.StructField) (key string, omitempty, ok bool) {
	tag := f.Tag.Get("json")
	if tag == "" || tag == "-" || !f.IsExported() {
		return "", false, false
	}
	name, opts, _ := strings.Cut(tag, ",")
	return name, strings.Contains(opts, "omitempty"), true
}
