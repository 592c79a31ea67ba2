module github.com/npllm/npllm

go 1.26.0

require (
	github.com/cilium/ebpf v0.22.0
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/godbus/dbus/v5 v5.2.4
	github.com/prometheus/procfs v0.23.0
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.50.0
)

require github.com/BurntSushi/toml v1.6.0 // indirect

tool github.com/cilium/ebpf/cmd/bpf2go
