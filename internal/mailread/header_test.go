package mailread

import "testing"

func TestDecodeHeader(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "hello", "hello"},
		{"utf-8 B", "=?UTF-8?B?w6lsw6h2ZQ==?=", "élève"},
		{"windows-1252 Q", "=?windows-1252?Q?Caf=E9_=80?=", "Café €"},
		{"iso-8859-1 Q", "=?ISO-8859-1?Q?na=EFve?=", "naïve"},
		{"shift_jis B", "=?Shift_JIS?B?k/qWe4zq?=", "日本語"},
		{"unknown charset kept raw", "=?x-nonsense?Q?abc?=", "=?x-nonsense?Q?abc?="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DecodeHeader(tt.in); got != tt.want {
				t.Errorf("DecodeHeader(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"header block", "From: a@b\r\nSubject: =?windows-1252?Q?=93hi=94?=\r\n", "\u201chi\u201d"},
		{"whole message", "Subject: x\r\n\r\nbody\r\n", "x"},
		{"none", "From: a@b\r\n", ""},
		{"garbage", "\x00\x01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Subject([]byte(tt.in)); got != tt.want {
				t.Errorf("Subject(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
