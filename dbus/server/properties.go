package server

import (
	"reflect"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/npllm/npllm/dbus/api"
)

// properties implements org.freedesktop.DBus.Properties for our one
// interface. Unlike godbus's prop package it batches: one refresh that
// changes five values emits one PropertiesChanged carrying five, and a value
// that did not change emits nothing. All properties are read-only: a
// property setter cannot tell who is calling, so privileged changes are
// methods checked by polkit.
type properties struct {
	conn     *dbus.Conn
	contract *api.Contract

	mu     sync.RWMutex
	values map[string]dbus.Variant
}

func newProperties(conn *dbus.Conn, contract *api.Contract) *properties {
	return &properties{conn: conn, contract: contract, values: map[string]dbus.Variant{}}
}

// update stores new values and emits PropertiesChanged for those that
// changed and are annotated to emit.
func (p *properties) update(next map[string]any) error {
	changed := map[string]dbus.Variant{}
	p.mu.Lock()
	for name, v := range next {
		nv := dbus.MakeVariant(v)
		old, had := p.values[name]
		if had && reflect.DeepEqual(old.Value(), nv.Value()) {
			continue
		}
		p.values[name] = nv
		if had && emitsChanged(p.contract.Properties[name].Annotations) {
			changed[name] = nv
		}
	}
	p.mu.Unlock()
	if len(changed) == 0 || p.conn == nil {
		return nil
	}
	return p.conn.Emit(api.ObjectPath, "org.freedesktop.DBus.Properties.PropertiesChanged", api.Interface, changed, []string{})
}

func emitsChanged(annotations []introspect.Annotation) bool {
	for _, a := range annotations {
		if a.Name == "org.freedesktop.DBus.Property.EmitsChangedSignal" {
			return a.Value == "true"
		}
	}
	return true // the D-Bus default
}

// Get implements org.freedesktop.DBus.Properties.Get.
func (p *properties) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if iface != api.Interface && iface != "" {
		return dbus.Variant{}, api.NewError("org.freedesktop.DBus.Error.UnknownInterface", "no interface %q here", iface)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	v, ok := p.values[name]
	if !ok {
		return dbus.Variant{}, api.NewError(api.ErrUnknownProperty, "no property %q on %s", name, api.Interface)
	}
	return v, nil
}

// GetAll implements org.freedesktop.DBus.Properties.GetAll.
func (p *properties) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if iface != api.Interface && iface != "" {
		return nil, api.NewError("org.freedesktop.DBus.Error.UnknownInterface", "no interface %q here", iface)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make(map[string]dbus.Variant, len(p.values))
	for k, v := range p.values {
		out[k] = v
	}
	return out, nil
}

// Set implements org.freedesktop.DBus.Properties.Set: everything is read-only.
func (p *properties) Set(iface, name string, _ dbus.Variant) *dbus.Error {
	if _, ok := p.contract.Properties[name]; !ok || (iface != api.Interface && iface != "") {
		return api.NewError(api.ErrUnknownProperty, "no property %q on %s", name, api.Interface)
	}
	return api.NewError(api.ErrPropertyReadOnly, "property %s is read-only; change state with the interface's methods", name)
}
