package metrics

import (
	"regexp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/npllm/npllm/dbus/api"
)

// The exposition. Labels take values only from fixed lists (kinds,
// severities, sensor names and counter names npllmd defines, histogram
// series): no pid, comm or other free-form text, so the series count is
// bounded (TestSeriesBudget).

var (
	descUp           = prometheus.NewDesc("npllm_up", "1 when npllmd answered on the system bus at this scrape, else 0.", nil, nil)
	descScrapeErrors = prometheus.NewDesc("npllm_exporter_call_errors_total", "npllmd calls that failed while npllmd was up, by call; their metrics were left out.", []string{"call"}, nil)
	descInfo         = prometheus.NewDesc("npllm_info", "npllmd's version (always 1).", []string{"version"}, nil)
	descHealth       = prometheus.NewDesc("npllm_health", "npllmd's health: 1 for the current state, 0 for the others.", []string{"state"}, nil)
	descMemTotal     = prometheus.NewDesc("npllm_memory_total_bytes", "MemTotal of /proc/meminfo as npllmd last read it (every second).", nil, nil)
	descMemAvail     = prometheus.NewDesc("npllm_memory_available_bytes", "MemAvailable of /proc/meminfo as npllmd last read it (every second).", nil, nil)
	descSwapTotal    = prometheus.NewDesc("npllm_swap_total_bytes", "SwapTotal of /proc/meminfo.", nil, nil)
	descSwapFree     = prometheus.NewDesc("npllm_swap_free_bytes", "SwapFree of /proc/meminfo.", nil, nil)
	descAlertActive  = prometheus.NewDesc("npllm_alert_active", "1 when an alert of this kind and severity is active.", []string{"kind", "severity"}, nil)
	descAlertsRaised = prometheus.NewDesc("npllm_alerts_raised_total", "Alerts raised by kind (continued across npllmd restarts by the exporter).", []string{"kind"}, nil)
	descEvents       = prometheus.NewDesc("npllm_events_total", "Events journaled by npllmd since boot, by kind (rebuilt from the journal when npllmd restarts).", []string{"kind"}, nil)
	descPruned       = prometheus.NewDesc("npllm_events_pruned", "1 when the journal no longer holds every event of this boot, so npllm_events_total is a lower bound.", nil, nil)
	descPressure     = prometheus.NewDesc("npllm_pressure_stalled_seconds_total", "Total stall time from /proc/pressure.", []string{"resource", "scope"}, nil)
	descBaselines    = prometheus.NewDesc("npllm_baselines", "Learned (user, program) baselines.", nil, nil)
	descSensorInfo   = prometheus.NewDesc("npllm_sensor_info", "A sensor's variant in use and state (always 1).", []string{"sensor", "variant", "state"}, nil)
	descDropped      = prometheus.NewDesc("npllm_sensor_dropped_total", "Events lost: in the kernel (ring full), in the queue to the journal, or by slow subscribers.", []string{"sensor", "where"}, nil)
	descDecodeErrors = prometheus.NewDesc("npllm_sensor_decode_errors_total", "Kernel records a sensor could not decode.", []string{"sensor"}, nil)
	descRetransmits  = prometheus.NewDesc("npllm_tcp_retransmits_total", "TCP segments retransmitted (tcp:tcp_retransmit_skb).", nil, nil)
	descResets       = prometheus.NewDesc("npllm_tcp_resets_total", "TCP resets sent and received.", []string{"direction"}, nil)
	descHistMissed   = prometheus.NewDesc("npllm_latency_samples_missed_total", "Samples a latency sensor could not time (their start was not seen).", []string{"sensor"}, nil)

	descRunq = prometheus.NewDesc("npllm_runqueue_latency_seconds",
		"Time from wake-up to running on a CPU (runq_latency sensor, off by default). _sum is NaN: the kernel keeps bucket counts only.", nil, nil)
	descBlockIO = prometheus.NewDesc("npllm_block_io_latency_seconds",
		"Block I/O time from issue to completion by operation. _sum is NaN: the kernel keeps bucket counts only.", []string{"op"}, nil)
)

// histogramSeries: one GetHistogram call each.
var histogramSeries = []struct {
	sensor, series, label, missedWith string
	desc                              *prometheus.Desc
}{
	{api.HistogramRunqLatency, "all", "", "all", descRunq},
	{api.HistogramBlockIOLatency, "read", "read", "read", descBlockIO},
	{api.HistogramBlockIOLatency, "write", "write", "read", descBlockIO},
	{api.HistogramBlockIOLatency, "other", "other", "read", descBlockIO},
}

// healthStates are the values of the Health property.
var healthStates = []string{api.HealthOK, api.SeverityWarning, api.SeverityCritical}

var severities = []string{api.SeverityInfo, api.SeverityWarning, api.SeverityCritical}

// Sensor names become label values: only short plain names, and at most
// maxSensors of them, whatever npllmd sends.
var sensorName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

const maxSensors = 32

func collectStatus(ch chan<- prometheus.Metric, st *api.Status, m *monotonic) {
	gauge(ch, descInfo, 1, st.Version)
	for _, h := range healthStates {
		gauge(ch, descHealth, boolValue(st.Health == h), h)
	}
	gauge(ch, descMemTotal, float64(st.MemoryTotal))
	gauge(ch, descMemAvail, float64(st.MemoryAvailable))
	gauge(ch, descSwapTotal, float64(st.SwapTotal))
	gauge(ch, descSwapFree, float64(st.SwapFree))

	active := map[[2]string]bool{}
	for _, a := range st.ActiveAlerts {
		active[[2]string{known(a.Kind, api.AlertKinds), known(a.Severity, severities)}] = true
	}
	for _, k := range append(slices.Clone(api.AlertKinds), "other") {
		for _, s := range severities {
			gauge(ch, descAlertActive, boolValue(active[[2]string{k, s}]), k, s)
		}
	}

	for _, s := range exportedSensors(st) {
		gauge(ch, descSensorInfo, 1, s.Name, s.Variant, s.State)
	}
}

// exportedSensors are the sensors whose names may become label values.
func exportedSensors(st *api.Status) []api.SensorStatus {
	var out []api.SensorStatus
	for i, s := range st.Sensors {
		if i >= maxSensors || !sensorName.MatchString(s.Name) || (s.Variant != "" && !sensorName.MatchString(s.Variant)) || !sensorName.MatchString(s.State) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// collectSensorCounters exports drops and the TCP counters from
// GetSensorDetails, for the sensors the Sensors property lists (so the
// label values are the checked names above, whatever else npllmd sends).
func collectSensorCounters(ch chan<- prometheus.Metric, st *api.Status, det map[string]api.SensorDetails, m *monotonic) {
	for _, s := range exportedSensors(st) {
		c := det[s.Name].Counters
		for key, where := range map[string]string{"dropped_kernel": "kernel", "dropped_queue": "queue", "dropped_subscribers": "subscribers"} {
			if v, ok := c[key]; ok {
				counter(ch, descDropped, m.sinceStart(s.Name+"/"+key, v), s.Name, where)
			}
		}
		if v, ok := c["decode_errors"]; ok {
			counter(ch, descDecodeErrors, m.sinceStart(s.Name+"/decode_errors", v), s.Name)
		}
		if s.Name != "tcp" {
			continue
		}
		if v, ok := c["retransmits"]; ok {
			counter(ch, descRetransmits, m.sinceStart("tcp/retransmits", v))
		}
		for key, dir := range map[string]string{"resets_sent": "sent", "resets_received": "received"} {
			if v, ok := c[key]; ok {
				counter(ch, descResets, m.sinceStart("tcp/"+key, v), dir)
			}
		}
	}
}

func collectCounters(ch chan<- prometheus.Metric, c api.Counters, m *monotonic) {
	for k, v := range c.Events {
		if k == "other" || slices.Contains(api.EventKinds, k) {
			counter(ch, descEvents, m.sinceBoot("events/"+k, v), k)
		}
	}
	gauge(ch, descPruned, boolValue(c.EventsPruned))
	for k, v := range c.AlertsRaised {
		if k == "other" || slices.Contains(api.AlertKinds, k) {
			counter(ch, descAlertsRaised, m.sinceStart("alerts/"+k, v), k)
		}
	}
	for _, r := range []string{"cpu", "memory", "io"} {
		for _, scope := range []string{"some", "full"} {
			if v, ok := c.PressureStalledUS[r+"."+scope]; ok {
				counter(ch, descPressure, float64(v)/1e6, r, scope) // the kernel's own total: monotonic
			}
		}
	}
	gauge(ch, descBaselines, float64(c.Baselines))
}

func known(v string, list []string) string {
	if slices.Contains(list, v) {
		return v
	}
	return "other"
}
