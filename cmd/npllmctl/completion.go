package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
)

// completeAlertIDs offers the active alerts' ids (asking npllmd briefly;
// nothing when it does not answer).
func completeAlertIDs(env *Env) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := env.Connect(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer c.Close()
		st, err := c.Status(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var ids []string
		for _, a := range st.ActiveAlerts {
			ids = append(ids, a.ID+"\t"+a.Summary)
		}
		return ids, cobra.ShellCompDirectiveNoFileComp
	}
}
