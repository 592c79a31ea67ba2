package server

import (
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/polkit"
)

func TestEveryContractMethodIsImplementedAndInThePolkitTable(t *testing.T) {
	c, err := api.ParseContract()
	if err != nil {
		t.Fatal(err)
	}
	exported := ExportedMethods()
	if len(c.MethodNames()) == 0 {
		t.Fatal("the contract declares no methods")
	}
	for _, m := range c.MethodNames() {
		if !exported[m] {
			t.Errorf("%s is declared but not implemented", m)
		}
		if _, ok := polkit.Lookup(m); !ok {
			t.Errorf("%s has no polkit table entry", m)
		}
	}
	for m := range exported {
		if _, ok := c.InSignature[m]; !ok {
			t.Errorf("%s is implemented but not declared", m)
		}
	}
	for name, rule := range polkit.Methods {
		if !rule.ReadOnly && rule.Action == "" {
			t.Errorf("%s is neither read-only nor guarded by an action", name)
		}
	}
}

func TestServerRefusesToStartWhenAMethodIsNotInThePolkitTable(t *testing.T) {
	c, _ := api.ParseContract()
	s := &Server{contract: c}
	if err := s.checkTables(); err != nil {
		t.Fatalf("tables as shipped: %v", err)
	}
	saved := polkit.Methods["GetProcess"]
	delete(polkit.Methods, "GetProcess")
	defer func() { polkit.Methods["GetProcess"] = saved }()
	err := s.checkTables()
	if err == nil || !strings.Contains(err.Error(), "GetProcess has no entry in the polkit table") {
		t.Errorf("checkTables = %v", err)
	}
}
