//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package smtp

import "net"

// socketReadable cannot look at the socket on this system without
// waiting: it reports false, and only bytes already read into the client's
// buffer are found (see peek_unix.go).
func socketReadable(net.Conn) bool { return false }
