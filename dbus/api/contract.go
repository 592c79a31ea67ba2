// Package api is npllm's D-Bus contract, shared by npllmd (dbus/server) and
// its clients (dbus/client): the names, the interface XML, the named errors,
// event kinds and severities, and typed records with their a{sv} encoders
// and decoders. It is a leaf: it imports only godbus and the standard
// library, so clients never link the daemon.
package api

import (
	_ "embed"
	"encoding/xml"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
)

// Names of the API. Adding members to Interface is not a version bump; an
// incompatible change creates org.npllm.Assistant2 on a new path.
const (
	BusName    = "org.npllm.Assistant"
	ObjectPath = dbus.ObjectPath("/org/npllm/Assistant1")
	Interface  = "org.npllm.Assistant1"

	// Signals of Interface, as godbus names them (interface.member).
	SignalAlert        = Interface + ".Alert"
	SignalAlertCleared = Interface + ".AlertCleared"
)

// InterfaceXML is the hand-written contract, served by Introspect and
// installed under /usr/share/dbus-1/interfaces/.
//
//go:embed org.npllm.Assistant1.xml
var InterfaceXML string

// Contract is InterfaceXML parsed: what npllmd must export and what every
// incoming call is checked against.
type Contract struct {
	Node introspect.Node
	// InSignature maps each method of Interface to the signature of its
	// input arguments, e.g. "GetProcess" → "u".
	InSignature map[string]string
	Properties  map[string]introspect.Property
	Signals     map[string]introspect.Signal
}

// ParseContract parses InterfaceXML.
func ParseContract() (*Contract, error) {
	c := &Contract{
		InSignature: map[string]string{},
		Properties:  map[string]introspect.Property{},
		Signals:     map[string]introspect.Signal{},
	}
	if err := xml.Unmarshal([]byte(InterfaceXML), &c.Node); err != nil {
		return nil, fmt.Errorf("parse %s.xml: %w", Interface, err)
	}
	for _, iface := range c.Node.Interfaces {
		if iface.Name != Interface {
			continue
		}
		for _, m := range iface.Methods {
			sig := ""
			for _, a := range m.Args {
				if a.Direction == "in" {
					sig += a.Type
				}
			}
			c.InSignature[m.Name] = sig
		}
		for _, p := range iface.Properties {
			c.Properties[p.Name] = p
		}
		for _, s := range iface.Signals {
			c.Signals[s.Name] = s
		}
		return c, nil
	}
	return nil, fmt.Errorf("%s.xml does not declare interface %s", Interface, Interface)
}

// MethodNames lists the methods of Interface in contract order.
func (c *Contract) MethodNames() []string {
	var names []string
	for _, iface := range c.Node.Interfaces {
		if iface.Name == Interface {
			for _, m := range iface.Methods {
				names = append(names, m.Name)
			}
		}
	}
	return names
}
