package journal

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestJournal: what a reopened journal returns after a sequence of puts
// and dones, a torn last record, and a full file.
func TestJournal(t *testing.T) {
	tests := []struct {
		name string
		size int64
		do   func(t *testing.T, j *Journal, path string)
		want map[string][]byte
	}{
		{"empty", 0, func(*testing.T, *Journal, string) {}, map[string][]byte{}},
		{"put kept", 0, func(t *testing.T, j *Journal, _ string) {
			must(t, j.Put("a", []byte(`{"x":1}`)))
			must(t, j.Put("b", []byte(`"two"`)))
		}, map[string][]byte{"a": []byte(`{"x":1}`), "b": []byte(`"two"`)}},
		{"done removed", 0, func(t *testing.T, j *Journal, _ string) {
			must(t, j.Put("a", []byte(`1`)))
			must(t, j.Put("b", []byte(`2`)))
			must(t, j.Done("a"))
		}, map[string][]byte{"b": []byte(`2`)}},
		{"all done starts again", 0, func(t *testing.T, j *Journal, _ string) {
			must(t, j.Put("a", []byte(`1`)))
			must(t, j.Done("a"))
			if j.end != 0 {
				t.Errorf("end %d after the last record was done, want 0", j.end)
			}
			must(t, j.Put("c", []byte(`3`)))
		}, map[string][]byte{"c": []byte(`3`)}},
		{"torn record ignored", 0, func(t *testing.T, j *Journal, path string) {
			must(t, j.Put("a", []byte(`1`)))
			end := j.end
			must(t, j.Put("b", []byte(`2222`)))
			// Damage b's payload, as a write cut by a crash would.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			must(t, err)
			_, err = f.WriteAt([]byte("x"), end+headerSize+3)
			must(t, err)
			f.Close()
		}, map[string][]byte{"a": []byte(`1`)}},
		{"full", 64, func(t *testing.T, j *Journal, _ string) {
			must(t, j.Put("a", []byte(`1`)))
			if err := j.Put("b", make([]byte, 40)); !errors.Is(err, ErrFull) {
				t.Errorf("put past the end: %v, want ErrFull", err)
			}
		}, map[string][]byte{"a": []byte(`1`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal")
			j, err := Open(path, tt.size)
			must(t, err)
			tt.do(t, j, path)
			must(t, j.Close())
			st, err := os.Stat(path)
			must(t, err)
			if want := max(tt.size, 0); want > 0 && st.Size() != want || want == 0 && st.Size() != DefaultSize {
				t.Errorf("file size %d", st.Size())
			}
			j, err = Open(path, tt.size)
			must(t, err)
			defer j.Close()
			if got := j.Found(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("found %q, want %q", got, tt.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestJournalLocked: a second process (here a second Open) cannot use a
// journal that is open.
func TestJournalLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, err := Open(path, 0)
	must(t, err)
	if j2, err := Open(path, 0); err == nil {
		j2.Close()
		t.Fatal("a second Open of an open journal succeeded")
	}
	must(t, j.Close())
	j, err = Open(path, 0)
	must(t, err)
	must(t, j.Close())
}
