package testenv

import (
	"net"
	"testing"
)

// ClosedPort returns an address on 127.0.0.1 where nothing listens: the
// port of a listener that was opened and closed, so a dial there is
// refused.
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
