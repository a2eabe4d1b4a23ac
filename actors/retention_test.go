package actors

import (
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		spec string
		next time.Time
		ok   bool
	}{
		{DefaultRetentionSchedule, time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC), true},
		{"30 3 * * *", time.Date(2026, 12, 4, 3, 30, 0, 0, time.UTC), true},
		{"0 * * * *", time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC), true},
		{"@hourly", time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC), true},
		{"61 * * * *", time.Time{}, false},
		{"nonsense", time.Time{}, false},
	} {
		s, err := ParseSchedule(c.spec)
		if (err == nil) != c.ok {
			t.Errorf("ParseSchedule(%q): %v", c.spec, err)
			continue
		}
		if err == nil && !s.Next(from).Equal(c.next) {
			t.Errorf("ParseSchedule(%q).Next = %v, want %v", c.spec, s.Next(from), c.next)
		}
	}
}
