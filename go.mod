module github.com/npllm/npllm

go 1.26.0

require (
	github.com/godbus/dbus/v5 v5.2.4
	github.com/prometheus/procfs v0.23.0
)

require golang.org/x/sys v0.50.0 // indirect
