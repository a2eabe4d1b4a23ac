package browser

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/go-rod/rod/lib/proto"
)

// keyDef describes a key for Input.dispatchKeyEvent.
type keyDef struct {
	key, code string
	keyCode   int
	text      string
	location  int
}

// namedKeys are the non-printing keys a recording may name.
var namedKeys = map[string]keyDef{
	"Enter":      {key: "Enter", code: "Enter", keyCode: 13, text: "\r"},
	"Tab":        {key: "Tab", code: "Tab", keyCode: 9},
	"Escape":     {key: "Escape", code: "Escape", keyCode: 27},
	"Backspace":  {key: "Backspace", code: "Backspace", keyCode: 8},
	"Delete":     {key: "Delete", code: "Delete", keyCode: 46},
	"Insert":     {key: "Insert", code: "Insert", keyCode: 45},
	"Home":       {key: "Home", code: "Home", keyCode: 36},
	"End":        {key: "End", code: "End", keyCode: 35},
	"PageUp":     {key: "PageUp", code: "PageUp", keyCode: 33},
	"PageDown":   {key: "PageDown", code: "PageDown", keyCode: 34},
	"ArrowLeft":  {key: "ArrowLeft", code: "ArrowLeft", keyCode: 37},
	"ArrowUp":    {key: "ArrowUp", code: "ArrowUp", keyCode: 38},
	"ArrowRight": {key: "ArrowRight", code: "ArrowRight", keyCode: 39},
	"ArrowDown":  {key: "ArrowDown", code: "ArrowDown", keyCode: 40},
	" ":          {key: " ", code: "Space", keyCode: 32, text: " "},
	"Shift":      {key: "Shift", code: "ShiftLeft", keyCode: 16, location: 1},
	"Control":    {key: "Control", code: "ControlLeft", keyCode: 17, location: 1},
	"Alt":        {key: "Alt", code: "AltLeft", keyCode: 18, location: 1},
	"Meta":       {key: "Meta", code: "MetaLeft", keyCode: 91, location: 1},
	"CapsLock":   {key: "CapsLock", code: "CapsLock", keyCode: 20},
}

// keyAliases maps other spellings to the names above.
var keyAliases = map[string]string{
	"Space": " ", "Spacebar": " ", "Esc": "Escape", "Return": "Enter", "Up": "ArrowUp",
	"Down": "ArrowDown", "Left": "ArrowLeft", "Right": "ArrowRight", "Del": "Delete",
	"Ctrl": "Control", "Cmd": "Meta", "Command": "Meta", "Option": "Alt",
}

// punctuationCodes are the US-layout codes and virtual key codes of
// printable non-alphanumeric characters.
var punctuationCodes = map[rune]struct {
	code    string
	keyCode int
}{
	';': {"Semicolon", 186}, ':': {"Semicolon", 186}, '=': {"Equal", 187}, '+': {"Equal", 187},
	',': {"Comma", 188}, '<': {"Comma", 188}, '-': {"Minus", 189}, '_': {"Minus", 189},
	'.': {"Period", 190}, '>': {"Period", 190}, '/': {"Slash", 191}, '?': {"Slash", 191},
	'`': {"Backquote", 192}, '~': {"Backquote", 192}, '[': {"BracketLeft", 219}, '{': {"BracketLeft", 219},
	'\\': {"Backslash", 220}, '|': {"Backslash", 220}, ']': {"BracketRight", 221}, '}': {"BracketRight", 221},
	'\'': {"Quote", 222}, '"': {"Quote", 222},
}

// lookupKey resolves a recorded key name (and optional code) to a key.
func lookupKey(name, code string) (keyDef, error) {
	if alias, ok := keyAliases[name]; ok {
		name = alias
	}
	if k, ok := namedKeys[name]; ok {
		if code != "" {
			k.code = code
		}
		return k, nil
	}
	if len(name) >= 2 && name[0] == 'F' {
		var n int
		if _, err := fmt.Sscanf(name, "F%d", &n); err == nil && n >= 1 && n <= 24 && fmt.Sprintf("F%d", n) == name {
			return keyDef{key: name, code: name, keyCode: 111 + n}, nil
		}
	}
	if utf8.RuneCountInString(name) == 1 {
		r, _ := utf8.DecodeRuneInString(name)
		k := keyDef{key: name, text: name, code: code}
		switch {
		case r >= 'a' && r <= 'z':
			k.keyCode = int(r - 'a' + 'A')
			if k.code == "" {
				k.code = "Key" + strings.ToUpper(name)
			}
		case r >= 'A' && r <= 'Z':
			k.keyCode = int(r)
			if k.code == "" {
				k.code = "Key" + name
			}
		case r >= '0' && r <= '9':
			k.keyCode = int(r)
			if k.code == "" {
				k.code = "Digit" + name
			}
		default:
			if p, ok := punctuationCodes[r]; ok {
				k.keyCode = p.keyCode
				if k.code == "" {
					k.code = p.code
				}
			}
		}
		return k, nil
	}
	return keyDef{}, fmt.Errorf("unknown key %q", name)
}

// Modifier bits of the DevTools input domain.
const (
	modAlt   = 1
	modCtrl  = 2
	modMeta  = 4
	modShift = 8
)

// modifierKeys resolves recorded modifier names to their keys and bit mask.
func modifierKeys(names []string) ([]keyDef, int, error) {
	var keys []keyDef
	mask := 0
	for _, n := range names {
		var bit int
		var key string
		switch strings.ToLower(strings.TrimSpace(n)) {
		case "alt", "option", "altkey":
			bit, key = modAlt, "Alt"
		case "ctrl", "control", "ctrlkey":
			bit, key = modCtrl, "Control"
		case "meta", "cmd", "command", "metakey":
			bit, key = modMeta, "Meta"
		case "shift", "shiftkey":
			bit, key = modShift, "Shift"
		default:
			return nil, 0, fmt.Errorf("unknown modifier %q", n)
		}
		if mask&bit == 0 {
			mask |= bit
			keys = append(keys, namedKeys[key])
		}
	}
	return keys, mask, nil
}

// keyEvent sends one key event.
func (s *session) keyEvent(ctx context.Context, typ proto.InputDispatchKeyEventType, k keyDef, mods int) error {
	ev := proto.InputDispatchKeyEvent{
		Type:                  typ,
		Modifiers:             mods,
		Key:                   k.key,
		Code:                  k.code,
		WindowsVirtualKeyCode: k.keyCode,
		NativeVirtualKeyCode:  k.keyCode,
	}
	if k.location != 0 {
		loc := k.location
		ev.Location = &loc
	}
	if typ == proto.InputDispatchKeyEventTypeKeyDown {
		// Ctrl, Alt or Meta chords are commands, not text.
		if k.text != "" && mods&(modAlt|modCtrl|modMeta) == 0 {
			ev.Text, ev.UnmodifiedText = k.text, k.text
		} else {
			ev.Type = proto.InputDispatchKeyEventTypeRawKeyDown
		}
	}
	return s.do(ctx, ev)
}

// holdModifiers presses the modifier keys and returns a function that
// releases them (with a context of its own, so they are released even when
// the action's context ended).
func (s *session) holdModifiers(ctx context.Context, keys []keyDef) (func(), error) {
	mask := 0
	release := func(n int) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		m := mask
		for i := n - 1; i >= 0; i-- {
			m &^= modBit(keys[i].key)
			_ = s.keyEvent(rctx, proto.InputDispatchKeyEventTypeKeyUp, keys[i], m)
		}
	}
	for i, k := range keys {
		mask |= modBit(k.key)
		if err := s.keyEvent(ctx, proto.InputDispatchKeyEventTypeKeyDown, k, mask); err != nil {
			release(i)
			return nil, err
		}
	}
	return func() { release(len(keys)) }, nil
}

func modBit(key string) int {
	switch key {
	case "Alt":
		return modAlt
	case "Control":
		return modCtrl
	case "Meta":
		return modMeta
	case "Shift":
		return modShift
	}
	return 0
}

// press sends keyDown and keyUp of k with modifiers held.
func (s *session) press(ctx context.Context, k keyDef, modifiers []string) error {
	mods, mask, err := modifierKeys(modifiers)
	if err != nil {
		return err
	}
	release, err := s.holdModifiers(ctx, mods)
	if err != nil {
		return err
	}
	defer release()
	if err := s.keyEvent(ctx, proto.InputDispatchKeyEventTypeKeyDown, k, mask); err != nil {
		return err
	}
	return s.keyEvent(ctx, proto.InputDispatchKeyEventTypeKeyUp, k, mask)
}

// mouseButton maps a recorded button to the DevTools name; missing or
// unknown means left.
func mouseButton(b string) (proto.InputMouseButton, int) {
	switch strings.ToLower(b) {
	case "right", "2":
		return proto.InputMouseButtonRight, 2
	case "middle", "1":
		return proto.InputMouseButtonMiddle, 4
	}
	return proto.InputMouseButtonLeft, 1
}

// moveMouse moves the pointer to (x, y).
func (s *session) moveMouse(ctx context.Context, x, y float64, mask int) error {
	zero := 0
	return s.do(ctx, proto.InputDispatchMouseEvent{Type: proto.InputDispatchMouseEventTypeMouseMoved,
		X: x, Y: y, Modifiers: mask, Buttons: &zero})
}

// click clicks count times at (x, y) with button, modifiers held. The
// pointer is already there (pointAt moved it).
func (s *session) click(ctx context.Context, x, y float64, button string, count int, modifiers []string) error {
	mods, mask, err := modifierKeys(modifiers)
	if err != nil {
		return err
	}
	release, err := s.holdModifiers(ctx, mods)
	if err != nil {
		return err
	}
	defer release()
	if mask != 0 {
		// Held modifiers show on the pointer's events too.
		if err := s.moveMouse(ctx, x, y, mask); err != nil {
			return err
		}
	}
	btn, bits := mouseButton(button)
	if count < 1 {
		count = 1
	}
	for i := 1; i <= count; i++ {
		down := bits
		if err := s.do(ctx, proto.InputDispatchMouseEvent{Type: proto.InputDispatchMouseEventTypeMousePressed,
			X: x, Y: y, Button: btn, Buttons: &down, ClickCount: i, Modifiers: mask}); err != nil {
			return err
		}
		up := 0
		if err := s.do(ctx, proto.InputDispatchMouseEvent{Type: proto.InputDispatchMouseEventTypeMouseReleased,
			X: x, Y: y, Button: btn, Buttons: &up, ClickCount: i, Modifiers: mask}); err != nil {
			return err
		}
	}
	return nil
}
