package browser

import (
	"context"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-rod/rod/lib/proto"
	"github.com/saveaction/runner/recording"
)

// typesKeyByKey reports whether an input action is replayed key by key:
// the recorder saw the user type (a typing delay, and not a programmatic
// setValue). The timing mode only scales the pause between keys; instant
// mode removes the pauses, not the keys, so that per-key handlers
// (autocomplete, input masks, counters, keydown validation) see what the
// user's typing made them see.
func typesKeyByKey(a *recording.Action) bool {
	return a.TypingDelay > 0 && a.SimulationType != "setValue"
}

// typedKeys splits text into the keys a user would press, one per
// user-perceived character: a base character with its combining marks,
// variation selectors and emoji modifiers, a zero-width-joiner sequence,
// or a pair of regional indicators (a flag) stay one key, so that no
// keystroke leaves half a character in the field. A newline is Enter when
// the field takes several lines (textarea, contenteditable).
func typedKeys(text string, multiline bool) []keyDef {
	var keys []keyDef
	start := -1    // byte offset of the cluster being built
	joins := false // the cluster ended with a zero-width joiner
	regional := 0  // regional indicators in the cluster
	flush := func(end int) {
		if start < 0 {
			return
		}
		keys = append(keys, charKey(text[start:end], multiline))
		start = -1
	}
	for i, r := range text {
		extends := start >= 0 && (joins || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) ||
			r == 0x200D || (r >= 0xFE00 && r <= 0xFE0F) || (r >= 0x1F3FB && r <= 0x1F3FF) ||
			(r >= 0xE0020 && r <= 0xE007F) || // emoji tag sequences (subdivision flags)
			(isRegional(r) && regional == 1))
		if !extends {
			flush(i)
			start, regional = i, 0
		}
		if isRegional(r) {
			regional++
		}
		joins = r == 0x200D
	}
	flush(len(text))
	return keys
}

func isRegional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

// charKey is the key that types one character: the US-layout key for
// ASCII (so that handlers see the usual key, code and keyCode), else a key
// named by the character that inserts it, as an IME-free keyboard would.
func charKey(ch string, multiline bool) keyDef {
	switch ch {
	case "\n", "\r\n", "\r":
		if multiline {
			return namedKeys["Enter"]
		}
		return keyDef{key: "Enter", code: "Enter", keyCode: 13}
	case "\t":
		return keyDef{key: "Tab", code: "Tab", keyCode: 9, text: "\t"}
	}
	if utf8.RuneCountInString(ch) == 1 {
		if k, err := lookupKey(ch, ""); err == nil {
			return k
		}
	}
	return keyDef{key: ch, text: ch}
}

// typeKeys types value into the focused field one key at a time: keydown
// (with the text, which makes beforeinput and input), then keyup, pausing
// delay between keys (none when delay is 0).
func (r *replay) typeKeys(ctx context.Context, delay time.Duration, value string, multiline bool) error {
	for i, k := range typedKeys(value, multiline) {
		if i > 0 && delay > 0 {
			if err := r.sleep(ctx, delay); err != nil {
				return err
			}
		}
		if err := r.s.keyEvent(ctx, proto.InputDispatchKeyEventTypeKeyDown, k, 0); err != nil {
			return err
		}
		if err := r.s.keyEvent(ctx, proto.InputDispatchKeyEventTypeKeyUp, k, 0); err != nil {
			return err
		}
	}
	return nil
}
