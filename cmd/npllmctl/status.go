package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/spf13/cobra"
)

func statusCmd(env *Env) *cobra.Command {
	return daemonCmd(env, "read", "status", "health, load, CPU, memory, swap, pressure, sensors and active alerts, at a glance",
		nargs(0, 0, "status"), runStatus)
}

func runStatus(ctx context.Context, env *Env, c *client.Client, _ []string) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if env.JSON {
		return printJSON(env.Out, statusJSON(st))
	}
	w := env.Out
	fmt.Fprintf(w, "npllmd %s — health: %s\n", st.Version, strings.ToUpper(st.Health))
	fmt.Fprintf(w, "  load      %.2f %.2f %.2f   cpu %.1f%%\n", st.Load[0], st.Load[1], st.Load[2], st.CPUUsage)
	fmt.Fprintf(w, "  memory    %s available of %s (%.0f%%)\n", api.HumanBytes(st.MemoryAvailable), api.HumanBytes(st.MemoryTotal), percent(st.MemoryAvailable, st.MemoryTotal))
	if st.SwapTotal == 0 {
		fmt.Fprintf(w, "  swap      none\n")
	} else {
		fmt.Fprintf(w, "  swap      %s free of %s (%.0f%%)\n", api.HumanBytes(st.SwapFree), api.HumanBytes(st.SwapTotal), percent(st.SwapFree, st.SwapTotal))
	}
	if len(st.Pressure) == 0 {
		fmt.Fprintf(w, "  pressure  unavailable (see sensors)\n")
	} else {
		var parts []string
		for _, k := range sortedKeys(st.Pressure) {
			p := st.Pressure[k]
			parts = append(parts, fmt.Sprintf("%s %.1f/%.1f/%.1f", k, p[0], p[1], p[2]))
		}
		fmt.Fprintf(w, "  pressure  %s   (%% stalled, avg 10s/60s/300s)\n", strings.Join(parts, "  "))
	}
	fmt.Fprintf(w, "  sensors   ")
	for i, s := range st.Sensors {
		if i > 0 {
			fmt.Fprintf(w, ", ")
		}
		if s.State == "running" {
			fmt.Fprintf(w, "%s (%s)", s.Name, s.Variant)
		} else {
			fmt.Fprintf(w, "%s %s", s.Name, strings.ToUpper(s.State))
		}
	}
	fmt.Fprintln(w)
	if len(st.ActiveAlerts) == 0 {
		fmt.Fprintf(w, "  alerts    none\n")
	}
	for _, a := range st.ActiveAlerts {
		fmt.Fprintf(w, "  alert     [%s] %s: %s\n", a.Severity, a.Kind, a.Summary)
	}
	return nil
}

func percent(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func statusJSON(st *api.Status) map[string]any {
	sensors := make([]map[string]any, 0, len(st.Sensors))
	for _, s := range st.Sensors {
		sensors = append(sensors, map[string]any{"name": s.Name, "variant": s.Variant, "state": s.State, "details": api.Plain(s.Details)})
	}
	pressure := map[string]any{}
	for k, v := range st.Pressure {
		pressure[k] = map[string]float64{"avg10": v[0], "avg60": v[1], "avg300": v[2]}
	}
	return map[string]any{
		"version":                st.Version,
		"health":                 st.Health,
		"load":                   st.Load,
		"cpu_usage":              st.CPUUsage,
		"memory_total_bytes":     st.MemoryTotal,
		"memory_available_bytes": st.MemoryAvailable,
		"swap_total_bytes":       st.SwapTotal,
		"swap_free_bytes":        st.SwapFree,
		"pressure":               pressure,
		"sensors":                sensors,
		"active_alerts":          alertsJSON(st.ActiveAlerts),
	}
}
