package crypt

import (
	"bytes"
	"errors"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestNewKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New(%d-byte key) = nil error, want error", n)
		}
	}
	if _, err := New(key(1)); err != nil {
		t.Fatalf("New(32-byte key): %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	box, err := New(key(7))
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range [][]byte{{}, []byte("hunter2"), []byte("\x00\xff\xfe pässwörd"), bytes.Repeat([]byte("x"), 10000)} {
		ct, err := box.Seal(pt)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ct, pt) && len(pt) > 0 {
			t.Errorf("ciphertext contains the plaintext %q", pt)
		}
		got, err := box.Open(ct)
		if err != nil {
			t.Fatalf("Open(Seal(%q)): %v", pt, err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open(Seal(%q)) = %q", pt, got)
		}
	}
}

func TestSealIsRandomised(t *testing.T) {
	box, _ := New(key(7))
	a, _ := box.Seal([]byte("same"))
	b, _ := box.Seal([]byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal: nonce not random")
	}
}

func TestOpenRejects(t *testing.T) {
	box, _ := New(key(7))
	other, _ := New(key(8))
	ct, err := box.Seal([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(ct)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name string
		box  *Box
		in   []byte
	}{
		{"wrong key", other, ct},
		{"tampered version", box, flip(0)},
		{"tampered nonce", box, flip(1)},
		{"tampered ciphertext", box, flip(len(ct) - 20)},
		{"tampered tag", box, flip(len(ct) - 1)},
		{"truncated", box, ct[:len(ct)-1]},
		{"too short", box, ct[:5]},
		{"empty", box, nil},
		{"appended byte", box, append(bytes.Clone(ct), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.box.Open(tt.in)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Open = %q, %v; want ErrDecrypt", got, err)
			}
		})
	}
}
