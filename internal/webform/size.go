package webform

import "fmt"

// Bytes formats a byte count for people: "512 B", "4.0 KiB", "5.0 MiB".
func Bytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Sizes formats a size and the limit it exceeds so that they read
// differently: with Bytes when that tells them apart ("5.2 MiB", "4.0
// MiB"), else in bytes ("4194305 bytes", "4194304 bytes").
func Sizes(n, limit int64) (size, max string) {
	size, max = Bytes(n), Bytes(limit)
	if size == max {
		return fmt.Sprintf("%d bytes", n), fmt.Sprintf("%d bytes", limit)
	}
	return size, max
}
