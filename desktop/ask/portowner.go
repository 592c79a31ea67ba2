package ask

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// A probed port may be anyone's: any local user can listen on 11434 first
// and read every question (and tool result) the agent sends. A probed
// server is used only when the sockets listening on it belong to the user
// or to a system account (uid < 1000: a packaged service); another user's
// server needs url in [model], a choice the user made.

// errNoListener: nothing listens on the port (the probe would fail anyway).
var errNoListener = errors.New("nothing listens there")

// ErrForeignServer: the probed port is another user's.
var ErrForeignServer = errors.New("the server on this port is another user's")

// loopbackListen are the local addresses, as /proc/net/tcp{,6} writes
// them, whose listeners answer a connection to 127.0.0.1.
var loopbackListen = map[string]bool{
	"0100007F": true, "00000000": true, // 127.0.0.1, 0.0.0.0
	"00000000000000000000000000000000": true, // ::
	"0000000000000000FFFF00000100007F": true, // ::ffff:127.0.0.1
	"0000000000000000FFFF000000000000": true, // ::ffff:0.0.0.0
}

// portOwners lists the uids of the TCP sockets that listen on port and
// would take a connection to 127.0.0.1:port.
func portOwners(procNet string, port int) ([]uint32, error) {
	var uids []uint32
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(procNet + "/" + name)
		if err != nil {
			if name == "tcp6" && errors.Is(err, os.ErrNotExist) {
				continue // no IPv6
			}
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 8 || fl[3] != "0A" { // 0A: LISTEN
				continue
			}
			addr, p, ok := strings.Cut(fl[1], ":")
			if !ok || !loopbackListen[addr] {
				continue
			}
			if n, err := strconv.ParseUint(p, 16, 16); err != nil || int(n) != port {
				continue
			}
			uid, err := strconv.ParseUint(fl[7], 10, 32)
			if err != nil {
				continue
			}
			uids = append(uids, uint32(uid))
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if len(uids) == 0 {
		return nil, errNoListener
	}
	return uids, nil
}

// checkPortOwner says whose server is on port: nil and the owner when it is
// the user's or a system account's, else ErrForeignServer naming the uid.
func checkPortOwner(procNet string, port int, me uint32) (uint32, error) {
	uids, err := portOwners(procNet, port)
	if err != nil {
		return 0, err
	}
	for _, uid := range uids {
		if uid != me && uid >= 1000 {
			return uid, fmt.Errorf("%w: port %d is %s's; set url in [model] of agent.toml to use it anyway", ErrForeignServer, port, userName(uid))
		}
	}
	return uids[0], nil
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username + " (uid " + strconv.Itoa(int(uid)) + ")"
	}
	return "uid " + strconv.Itoa(int(uid))
}
