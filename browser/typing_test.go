package browser

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

func typingPage() string { return fixtureURL("/typing.html") }

// typeInto is an input action recorded as typed, with a typing delay.
func typeInto(id, value string, delayMs float64) recording.Action {
	a := input(recording.Selector{ID: id}, value)
	a.TypingDelay = delayMs
	a.SimulationType = "type"
	return a
}

func TestTypedKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		text      string
		multiline bool
		want      []string // key of each keystroke
		texts     []string // text each inserts, when it differs from want
	}{
		{text: "aB1!", want: []string{"a", "B", "1", "!"}},
		{text: "Ünïcödé", want: []string{"Ü", "n", "ï", "c", "ö", "d", "é"}},
		// e + combining acute accent is one character, one key.
		{text: "e\u0301x", want: []string{"e\u0301", "x"}},
		{text: "😀日本", want: []string{"😀", "日", "本"}},
		// A flag is two regional indicators; a family is a ZWJ sequence; a
		// thumbs-up with a skin tone carries a modifier.
		{text: "🇫🇷🇩🇪", want: []string{"🇫🇷", "🇩🇪"}},
		{text: "👨\u200d👩\u200d👧!", want: []string{"👨\u200d👩\u200d👧", "!"}},
		{text: "👍🏽❤️", want: []string{"👍🏽", "❤️"}},
		{text: "a\nb", multiline: true, want: []string{"a", "Enter", "b"}, texts: []string{"a", "\r", "b"}},
		{text: "a\nb", want: []string{"a", "Enter", "b"}, texts: []string{"a", "", "b"}},
		{text: "", want: nil},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q", c.text), func(t *testing.T) {
			keys := typedKeys(c.text, c.multiline)
			var got, texts []string
			for _, k := range keys {
				got = append(got, k.key)
				texts = append(texts, k.text)
			}
			if strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
				t.Errorf("keys %q, want %q", got, c.want)
			}
			want := c.texts
			if want == nil {
				want = c.want
			}
			if strings.Join(texts, "|") != strings.Join(want, "|") {
				t.Errorf("texts %q, want %q", texts, want)
			}
		})
	}
	if k := typedKeys("a", false)[0]; k.code != "KeyA" || k.keyCode != 65 {
		t.Errorf("a is %+v, want code KeyA and keyCode 65", k)
	}
}

// Each case runs in instant mode (no pauses, every key) and in realistic
// mode (the recorded delay between keys), and checks what the page's per-key
// handlers made of it.
func TestTypingKeyByKey(t *testing.T) {
	t.Parallel()
	setValue := typeInto("city", "Par", 20)
	setValue.SimulationType = "setValue"
	cases := []struct {
		name   string
		action recording.Action
		reads  []string
		want   []string
	}{
		{"autocomplete sees every prefix", typeInto("city", "Par", 20),
			[]string{text("#city-seen"), text("#suggestions"), value("#city")},
			[]string{"P|Pa|Par", "ParisParma", "Par"}},
		{"setValue inserts at once", setValue,
			[]string{text("#city-seen"), value("#city")}, []string{"Par", "Par"}},
		{"no typing delay inserts at once", typeInto("city", "Zü", 0),
			[]string{text("#city-seen"), text("#suggestions")}, []string{"Zü", "Zürich"}},
		{"phone mask formats keystrokes", typeInto("phone", "5551234567", 15),
			[]string{value("#phone"), text("#phone-digits")}, []string{"(555) 123-4567", "5551234567"}},
		{"character counter counts per key", typeInto("bio", "Ünïcödé 😀 日本語", 10),
			[]string{text("#counter"), text("#bio-updates"), value("#bio")},
			[]string{"267 characters left", "13", "Ünïcödé 😀 日本語"}},
		{"keydown beforeinput input keyup per key", typeInto("plain", "aé😀", 10),
			[]string{text("#keylog"), value("#plain")},
			[]string{"down:a;before:insertText:a;input:a;up:a;" +
				"down:é;before:insertText:é;input:é;up:é;" +
				"down:😀;before:insertText:😀;input:😀;up:😀;", "aé😀"}},
		{"contenteditable", typeInto("editor", "hi 日本", 10),
			[]string{text("#editor"), "(document.querySelector('#keylog').textContent.match(/down:/g) || []).length",
				"(document.querySelector('#keylog').textContent.match(/input:/g) || []).length"},
			[]string{"hi 日本", "5", "5"}},
		{"textarea newline is Enter", typeInto("bio", "a\nb", 10),
			[]string{value("#bio"), text("#bio-updates")}, []string{"a\nb", "3"}},
	}
	for _, mode := range []string{TimingInstant, TimingRealistic} {
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				clock := &fakeClock{now: time.Unix(0, 0)}
				opts := quick()
				opts.Timeout = 10 * time.Second
				opts.TimingMode = mode
				opts.Clock = clock
				res, got := replayAndRead(t, newRec(typingPage(), c.action), opts, c.reads...)
				wantStatus(t, res, RunPassed)
				for i := range c.want {
					if got[i] != c.want[i] {
						t.Errorf("%s = %q, want %q", c.reads[i], got[i], c.want[i])
					}
				}
				// Pauses between keys: none in instant mode; the recorded
				// delay between every two keys in realistic mode.
				keys := 0
				if typesKeyByKey(&c.action) {
					keys = len(typedKeys(*c.action.Value, true))
				}
				var pauses int
				for _, w := range clock.waits {
					if w == time.Duration(c.action.TypingDelay*float64(time.Millisecond)) {
						pauses++
					}
				}
				want := 0
				if mode == TimingRealistic && keys > 1 {
					want = keys - 1
				}
				if pauses != want || (mode == TimingInstant && len(clock.waits) != 0) {
					t.Errorf("waits %v: %d pauses of %gms, want %d", clock.waits, pauses, c.action.TypingDelay, want)
				}
			})
		}
	}
}

// BenchmarkTypingPerChar measures what typing key by key costs per
// character in instant mode: a 100-character value (ASCII, accents, CJK,
// emoji) typed into a field, against the same value inserted at once
// (setValue), each timed by the action's own duration. "plain" is a field
// with no handlers (our cost); "handlers" is the typing page's textarea
// with a counter and a per-key event log (the page's cost added).
func BenchmarkTypingPerChar(b *testing.B) {
	br := needBrowser(b)
	const n = 100
	val := ""
	for _, k := range typedKeys(strings.Repeat("abcdé 日本😀 ", n), false)[:n] {
		val += k.text
	}
	// The cost of one DevTools round trip on this machine, to read the
	// figures against: a keystroke is two (keydown with its text, keyup).
	b.Run("round-trip", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := br.newSession(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer s.dispose()
		var total time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			for j := 0; j < 100; j++ {
				if err := s.evalExpr(ctx, "0", nil); err != nil {
					b.Fatal(err)
				}
			}
			total += time.Since(start)
		}
		b.ReportMetric(float64(total.Microseconds())/float64(b.N)/100, "µs/round-trip")
	})
	for _, bc := range []struct{ name, page, id string }{
		{"plain", fixtureURL("/static.html"), "i0"},
		{"handlers", typingPage(), "bio"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			typed := typeInto(bc.id, val, 50)
			set := typeInto(bc.id, val, 50)
			set.SimulationType = "setValue"
			rec := newRec(bc.page, typed, set)
			opts := quick()
			opts.Timeout = 60 * time.Second
			var perKey, oneShot time.Duration
			for i := 0; i < b.N; i++ {
				res := br.Replay(context.Background(), rec, opts, nil)
				if res.Status != RunPassed {
					b.Fatalf("run %s: %s", res.Status, res.ErrorMessage)
				}
				perKey += res.Actions[0].CompletedAt.Sub(res.Actions[0].StartedAt)
				oneShot += res.Actions[1].CompletedAt.Sub(res.Actions[1].StartedAt)
			}
			b.ReportMetric(float64(perKey.Microseconds())/float64(b.N)/n, "µs/char")
			b.ReportMetric(float64(oneShot.Microseconds())/float64(b.N), "µs/setValue-action")
		})
	}
}
