package testenv

import "testing"

func TestBusySince(t *testing.T) {
	for _, tc := range []struct {
		earlier, later CPUTimes
		want           float64
	}{
		{CPUTimes{100, 100}, CPUTimes{150, 150}, 0.5},
		{CPUTimes{100, 100}, CPUTimes{190, 110}, 0.9},
		{CPUTimes{100, 100}, CPUTimes{100, 200}, 0},
		{CPUTimes{100, 100}, CPUTimes{100, 100}, 0}, // no tick passed
	} {
		if got := tc.later.BusySince(tc.earlier); got != tc.want {
			t.Errorf("%+v since %+v: %v, want %v", tc.later, tc.earlier, got, tc.want)
		}
	}
	a, err := ReadCPU()
	if err != nil {
		t.Fatal(err)
	}
	if a.Busy <= 0 || a.Idle < 0 {
		t.Errorf("ReadCPU: %+v, want busy time above 0", a)
	}
}
