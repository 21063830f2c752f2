//go:build !linux

package main

// evict does nothing where there is no posix_fadvise to drop a file from
// the page cache: the programs start as they were written.
func evict(string) error { return nil }
