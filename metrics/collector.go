// Package metrics is npllm-exporter's Prometheus collector: an unprivileged
// client of npllmd on the system bus (neither a sensor nor part of the bus
// API) that turns one GetAll, one GetCounters, one GetSensorDetails and one
// GetHistogram per histogram series into the exposition, whatever the number of processes.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/npllm/npllm/dbus/api"
)

// Source is what a scrape reads; *client.Client implements it.
type Source interface {
	Status(ctx context.Context) (*api.Status, error)
	GetCounters(ctx context.Context) (api.Counters, error)
	GetSensorDetails(ctx context.Context) (map[string]api.SensorDetails, error)
	GetHistogram(ctx context.Context, name, series string) (api.Histogram, error)
	Close() error
}

// Dial connects to npllmd; the collector calls it again after a failure.
type Dial func(ctx context.Context) (Source, error)

// Collector reads npllmd on every scrape. Scrapes are serialized: each costs
// npllmd a few bus calls, and two scrapers at once must not double it.
type Collector struct {
	dial    Dial
	timeout time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	src    Source
	up     bool
	logged bool // the current state (up or down) was logged
	mono   *monotonic
	errs   map[string]uint64
}

// New makes a collector; timeout bounds one scrape's bus calls.
func New(dial Dial, timeout time.Duration, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{dial: dial, timeout: timeout, log: log, mono: newMonotonic(), errs: map[string]uint64{}}
}

// Describe sends nothing: the set of series depends on what npllmd runs
// (an "unchecked" collector in client_golang's terms).
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect performs one scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.status(ctx)
	c.setUp(err)
	gauge(ch, descUp, boolValue(err == nil))
	defer func() {
		for call, n := range c.errs {
			counter(ch, descScrapeErrors, float64(n), call)
		}
	}()
	if err != nil {
		return
	}
	cnt, err := c.src.GetCounters(ctx)
	if err != nil {
		c.failed("GetCounters", err)
	}
	c.mono.begin(cnt.BootID, cnt.StartedNS)
	collectStatus(ch, st, c.mono)
	if err == nil {
		collectCounters(ch, cnt, c.mono)
	}
	if det, err := c.src.GetSensorDetails(ctx); err != nil {
		c.failed("GetSensorDetails", err)
	} else {
		collectSensorCounters(ch, st, det, c.mono)
	}
	c.collectHistograms(ctx, ch, st)
}

// status reads the properties, dialing first if there is no connection.
func (c *Collector) status(ctx context.Context) (*api.Status, error) {
	if c.src == nil {
		src, err := c.dial(ctx)
		if err != nil {
			return nil, err
		}
		c.src = src
	}
	st, err := c.src.Status(ctx)
	if err != nil {
		// The bus may have gone away with npllmd; dial again next time.
		c.src.Close()
		c.src = nil
	}
	return st, err
}

// setUp logs each change between reachable and not, once.
func (c *Collector) setUp(err error) {
	up := err == nil
	if up == c.up && c.logged {
		return
	}
	c.up, c.logged = up, true
	if up {
		c.log.Info("npllmd answers on the system bus; exporting its metrics")
		return
	}
	c.log.Warn("npllmd does not answer on the system bus; npllm_up is 0 until it does (is npllmd running? the bus address is DBUS_SYSTEM_BUS_ADDRESS or the system bus)", "err", err)
}

// failed counts a call that failed while npllmd answered GetAll (an older
// npllmd without GetCounters, a histogram sensor that broke).
func (c *Collector) failed(call string, err error) {
	c.errs[call]++
	if c.errs[call] == 1 {
		c.log.Warn("npllmd call failed; its metrics are left out", "call", call, "err", err)
	}
}

func (c *Collector) collectHistograms(ctx context.Context, ch chan<- prometheus.Metric, st *api.Status) {
	running := map[string]bool{}
	for _, s := range st.Sensors {
		running[s.Name] = s.State == "running"
	}
	for _, h := range histogramSeries {
		if !running[h.sensor] {
			continue // off or unavailable: no series, the sensor info says why
		}
		hist, err := c.src.GetHistogram(ctx, h.sensor, h.series)
		if err != nil {
			if api.ErrorName(err) == api.ErrNotSupported {
				continue // switched off between GetAll and now
			}
			c.failed("GetHistogram", err)
			continue
		}
		buckets, count, ok := cumulative(hist)
		if !ok {
			c.failed("GetHistogram", errors.New("buckets are not npllmd's log2 buckets"))
			continue
		}
		labels := []string{}
		if h.label != "" {
			labels = append(labels, h.label)
		}
		ch <- prometheus.MustNewConstHistogram(h.desc, count, unknownSum, buckets, labels...)
		if h.series == h.missedWith {
			counter(ch, descHistMissed, c.mono.sinceStart("missed/"+h.sensor, hist.Missed), h.sensor)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}
