// Command npllmctl is the command-line client of npllmd (spf13/cobra; one
// file per group of commands, over dbus/client).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/npllm/npllm/dbus/client"
)

func main() {
	env := &Env{Out: os.Stdout, Connect: client.Connect}
	if err := Run(context.Background(), env, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "npllmctl: %v\n", err)
		var ee *ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.Code)
		}
		os.Exit(1)
	}
}
