// Command npllmctl is the command-line client of npllmd; the commands live
// in package dbus/ctl.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	npbus "github.com/npllm/npllm/dbus"
	"github.com/npllm/npllm/dbus/ctl"
)

func main() {
	env := &ctl.Env{Out: os.Stdout, Connect: npbus.Connect}
	if err := ctl.Run(context.Background(), env, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "npllmctl: %v\n", err)
		var ee *ctl.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.Code)
		}
		os.Exit(1)
	}
}
