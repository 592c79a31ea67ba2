// Command npllm-exporter serves npllmd's metrics to Prometheus. It is an
// unprivileged client of npllmd on the system bus; this file only wires
// flags, logging, the collector (metrics/) and exporter-toolkit's server.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/metrics"
	"github.com/npllm/npllm/systemd"
)

var version = "0.1.0-dev"

// defaultAddress: 9100–9999, the range of Prometheus's default port
// allocation list, is fully allocated, so the port is outside it (README,
// "Fleet").
const defaultAddress = ":10140"

const usage = `Usage: npllm-exporter [OPTIONS]

npllm-exporter reads npllmd over the system bus (or DBUS_SYSTEM_BUS_ADDRESS)
and serves its metrics for Prometheus at /metrics. It needs no privileges.
Without npllmd it keeps serving, with npllm_up 0.

Options:
`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	flags := flag.NewFlagSet("npllm-exporter", flag.ContinueOnError)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usage)
		flags.PrintDefaults()
		fmt.Fprint(flags.Output(), "\nExit status: 0 after SIGTERM, 1 when it cannot listen or its web config is invalid, 2 on bad options.\n")
	}
	var listen listFlag
	flags.Var(&listen, "web.listen-address", "address to listen on (repeatable; default "+defaultAddress+")")
	socket := flags.Bool("web.systemd-socket", false, "use the socket systemd passes (npllm-exporter.socket) instead of listening")
	webConfig := flags.String("web.config.file", "", "exporter-toolkit web configuration (TLS, basic auth); see npllm-exporter(1)")
	path := flags.String("web.telemetry-path", "/metrics", "path of the metrics")
	timeout := flags.Duration("npllm.timeout", 5*time.Second, "limit on one scrape's calls to npllmd")
	exporterMetrics := flags.Bool("web.exporter-metrics", false, "also export the exporter's own Go and process metrics")
	logLevel := flags.String("log.level", "info", "debug, info, warn or error")
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "npllm-exporter: unexpected argument %q\n", flags.Arg(0))
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("npllm-exporter", version)
		return
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "npllm-exporter: --log.level: %v\n", err)
		os.Exit(2)
	}
	if *timeout <= 0 || *timeout > time.Minute {
		fmt.Fprintln(os.Stderr, "npllm-exporter: --npllm.timeout must be between 0 and 1m")
		os.Exit(2)
	}
	if len(listen) == 0 {
		listen = listFlag{defaultAddress}
	}
	log := systemd.Logger("npllm-exporter", level)

	// The connection outlives the scrape that opens it (client.Connect's
	// context would close it when the scrape ends); only the ping is bounded.
	dial := func(ctx context.Context) (metrics.Source, error) {
		conn, err := dbus.ConnectSystemBus()
		if err != nil {
			return nil, fmt.Errorf("%w: cannot connect to the system bus: %v", client.ErrNotRunning, err)
		}
		c := client.NewClient(conn)
		if err := c.Ping(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return c, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(dial, *timeout, log))
	if *exporterMetrics {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	mux := http.NewServeMux()
	mux.Handle(*path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), MaxRequestsInFlight: 4}))
	if *path != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{Name: "npllm-exporter", Description: "npllmd's metrics for Prometheus", Version: version,
			Links: []web.LandingLinks{{Address: *path, Text: "Metrics"}}})
		if err != nil {
			log.Error("landing page", "err", err)
			os.Exit(1)
		}
		mux.Handle("/", landing)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	cfg := &web.FlagConfig{WebListenAddresses: (*[]string)(&listen), WebSystemdSocket: socket, WebConfigFile: webConfig}
	if err := web.ListenAndServe(srv, cfg, log); err != nil {
		log.Error("npllm-exporter stopped", "err", err)
		os.Exit(1)
	}
}
