package server

import (
	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

// pipelineName is the pseudo-sensor for the hub and the journal.
const pipelineName = "event-pipeline"

const pipelineDescription = "event queue between sensors and the journal; drops are counted, never silent"

// GetSensorDetails serves what the Sensors property leaves out: each
// sensor's description and counters. Counters are read here, when a client
// asks, rather than on every refresh (for the eBPF sensors that is a read
// of per-CPU kernel maps). Counters are typed a{st}, not a{sv}: half the
// encoding work in godbus (BenchmarkEncodeSensorDetails).
func (a *assistant) GetSensorDetails(msg dbus.Message) (out map[string]api.SensorDetails, derr *dbus.Error) {
	c, derr := a.s.begin(msg, "GetSensorDetails")
	if derr != nil {
		return nil, derr
	}
	defer c.end(&derr)
	return a.s.sensorDetails(), nil
}

func (s *Server) sensorDetails() map[string]api.SensorDetails {
	out := map[string]api.SensorDetails{}
	if s.cfg.Sensors != nil {
		counters := s.cfg.Sensors.Counters()
		for _, st := range s.cfg.Sensors.Status() {
			c := counters[st.Name]
			if c == nil {
				c = map[string]uint64{}
			}
			out[st.Name] = api.SensorDetails{Description: st.Description, Counters: c}
		}
	}
	if s.cfg.Hub != nil {
		c := s.cfg.Hub.Counters()
		c["audit_denials_not_logged"] = s.audits.deniedNotLogged.Load()
		if j := s.cfg.Journal; j != nil {
			c["journal_last_seq"] = j.LastSeq()
			for k, v := range j.Counters() {
				c[k] = v
			}
		}
		out[pipelineName] = api.SensorDetails{Description: pipelineDescription, Counters: c}
	}
	return out
}
