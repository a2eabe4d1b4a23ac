package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-rod/rod/lib/proto"
	"github.com/saveaction/runner/recording"
)

// hoveredJS waits (on a loaded machine, frames come late) until the page
// has taken the pointer move: the element matches :hover, so mouseover and
// mouseenter handlers have run. It gives up after two seconds and lets the
// action end anyway; a hover has no failure of its own to report.
const hoveredJS = `return new Promise((res) => {
  const end = Date.now() + 2000;
  const check = () => (el.matches(':hover') || Date.now() > end) ? res(true) : setTimeout(check, 16);
  requestAnimationFrame(check);
});`

// modalWait bounds how long a modal-lifecycle action waits for its modal
// before it is skipped.
const modalWait = 3 * time.Second

// elementJS prefixes scripts that work on the element the locator found.
const elementJS = `const el = window[Symbol.for('saveaction.element')];
if (!el || !el.isConnected) throw new Error('element is no longer attached');
`

// execute performs one action.
func (r *replay) execute(ctx context.Context, a *recording.Action, run *actionRun) error {
	switch a.Type {
	case recording.TypeClick:
		return r.click(ctx, a, run)
	case recording.TypeInput:
		return r.input(ctx, a, run)
	case recording.TypeSelect:
		return r.selectOption(ctx, a, run)
	case recording.TypeNavigation:
		return r.navigation(ctx, a)
	case recording.TypeHover:
		return r.hover(ctx, a, run)
	case recording.TypeScroll:
		return r.scroll(ctx, a, run)
	case recording.TypeKeypress:
		return r.keypress(ctx, a)
	case recording.TypeSubmit:
		return r.submit(ctx, a, run)
	case recording.TypeCheckpoint:
		return r.checkpoint(ctx, a, run)
	case recording.TypeModalLifecycle:
		return r.modal(ctx, a)
	}
	return skip("unsupported action type %q", a.Type)
}

func (r *replay) click(ctx context.Context, a *recording.Action, run *actionRun) error {
	var off *offset
	if a.Coordinates != nil && a.CoordinatesRelativeTo == "element" {
		off = &offset{X: a.Coordinates.X, Y: a.Coordinates.Y}
	}
	loc, err := r.s.pointAt(ctx, targetOf(a), off)
	if loc != nil {
		run.selectorUsed = loc.Used
	}
	if err != nil {
		return err
	}
	var toggle struct {
		Checkable bool `json:"checkable"`
		Checked   bool `json:"checked"`
	}
	if a.Checked != nil {
		if err := r.s.evalFunc(ctx, `() => {`+elementJS+`
			const c = el.tagName === 'INPUT' && (el.type === 'checkbox' || el.type === 'radio');
			return { checkable: c, checked: c && el.checked };
		}`, &toggle); err != nil {
			return err
		}
		if toggle.Checkable && toggle.Checked == *a.Checked {
			run.warn("element was already %s; not clicked", checkedWord(*a.Checked))
			return nil
		}
	}
	before := r.s.state()
	count := a.ClickCount
	if count < 1 {
		count = 1
	}
	if err := r.s.click(ctx, loc.X, loc.Y, a.Button, count, a.Modifiers); err != nil {
		return fmt.Errorf("click %s: %w", loc.Desc, err)
	}
	if err := r.s.settle(ctx, before); err != nil {
		return err
	}
	if a.Checked != nil && toggle.Checkable {
		var now bool
		err := r.s.evalFunc(ctx, `() => { const el = window[Symbol.for('saveaction.element')]; return !!(el && el.checked); }`, &now)
		if err == nil && now != *a.Checked {
			return fmt.Errorf("%s is not %s after the click", loc.Desc, checkedWord(*a.Checked))
		}
	}
	return nil
}

func checkedWord(b bool) string {
	if b {
		return "checked"
	}
	return "unchecked"
}

// inputValue resolves the value to type: variableName with a provided
// variable replaces it whole; `${NAME}` placeholders are filled; unknown
// ones stay literal with a warning.
func (r *replay) inputValue(a *recording.Action, run *actionRun) string {
	value := ""
	if a.Value != nil {
		value = *a.Value
	}
	if a.VariableName != "" {
		if v, ok := r.opts.Variables[a.VariableName]; ok {
			return v
		}
	}
	return substitute(value, r.opts.Variables, run)
}

var placeholder = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func substitute(s string, vars map[string]string, run *actionRun) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := vars[name]; ok {
			return v
		}
		run.warn("unknown variable %q left as written", name)
		return m
	})
}

// fieldKind classifies the element of an input action.
type fieldKind struct {
	Kind  string `json:"kind"` // text, editable, checkable, file, select, value, other
	Type  string `json:"type"`
	Value string `json:"value"`
	// Inserted is true when the text was already replaced (and input and
	// change fired) in the same call.
	Inserted bool `json:"inserted"`
}

func (r *replay) input(ctx context.Context, a *recording.Action, run *actionRun) error {
	value := r.inputValue(a, run)
	keyByKey := typesKeyByKey(a)
	delay := time.Duration(a.TypingDelay * r.opts.timingScale() * float64(time.Millisecond))
	// One call locates the field, classifies it and, for text, focuses it,
	// selects its content and (unless typing key by key) replaces it.
	var insert *string
	secret := r.secretInput(a, value)
	if !keyByKey && !secret {
		insert = &value
	}
	var fk fieldKind
	loc, err := r.s.locateThen(ctx, targetOf(a), modeReady, fieldJS, insert, &fk)
	if loc != nil {
		run.selectorUsed = loc.Used
	}
	if err != nil {
		return err
	}
	if fk.Inserted {
		return nil
	}
	if secret && fk.Kind != "file" {
		// Black the field out before the secret is in it (mask.go).
		if err := r.maskField(ctx); err != nil {
			return err
		}
	}
	switch fk.Kind {
	case "checkable":
		return r.setChecked(ctx, value, fk)
	case "file":
		return r.setFile(ctx, value)
	case "select":
		return r.s.evalFunc(ctx, selectJS, nil, selectSpec{Values: []string{value}})
	case "value":
		return r.s.evalFunc(ctx, `(v) => {`+elementJS+`
			el.focus();
			const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
			setter.call(el, v);
			el.dispatchEvent(new Event('input', { bubbles: true }));
			el.dispatchEvent(new Event('change', { bubbles: true }));
		}`, nil, value)
	case "other":
		return fmt.Errorf("cannot type into %s (%s)", loc.Desc, fk.Type)
	}
	return r.typeText(ctx, keyByKey, delay, value, fk.Kind == "editable", fk.Type == "textarea")
}

// changeJS ends the editing of the focused text field el as leaving it
// would: the browser fires change itself on blur (and, when it is done by
// hand, would fire another once the field really loses focus); the field
// gets its focus back. When the browser fired none (the frame is not
// focused, say), change is dispatched by hand.
const changeJS = `{
	let changed = false;
	const seen = () => { changed = true; };
	el.addEventListener('change', seen, true);
	el.blur();
	el.focus();
	el.removeEventListener('change', seen, true);
	if (!changed) el.dispatchEvent(new Event('change', { bubbles: true }));
}`

// fieldJS classifies the located element for an input action; text fields
// and editable elements are focused with their content selected. Given a
// value, it replaces the selection with it as typing would (the editing
// command fires beforeinput and input, trusted) and fires change; when the
// editing command is unavailable it reports inserted: false and the caller
// types through the input domain instead.
const fieldJS = `(insert) => {` + elementJS + `
	const t = (el.type || '').toLowerCase();
	let kind = 'other';
	if (el.tagName === 'SELECT') kind = 'select';
	else if (el.tagName === 'TEXTAREA') kind = 'text';
	else if (el.tagName === 'INPUT') {
		if (t === 'checkbox' || t === 'radio') return { kind: 'checkable', type: t, value: el.value };
		if (t === 'file') kind = 'file';
		else if (['date','time','datetime-local','month','week','color','range'].includes(t)) kind = 'value';
		else if (['button','submit','reset','image','hidden'].includes(t)) kind = 'other';
		else kind = 'text';
	} else if (el.isContentEditable) kind = 'editable';
	if (kind === 'text' || kind === 'editable') {
		el.focus();
		if (kind === 'editable') {
			const range = document.createRange();
			range.selectNodeContents(el);
			const sel = getSelection();
			sel.removeAllRanges();
			sel.addRange(range);
		} else {
			el.select();
		}
		// Focus inside a shadow root shows on the document as its host.
		let active = document.activeElement;
		while (active && active.shadowRoot && active.shadowRoot.activeElement) active = active.shadowRoot.activeElement;
		if (active !== el && !el.contains(active)) throw new Error('element did not take focus');
		if (insert !== null && insert !== undefined) {
			const ok = insert === '' ? (el.value === '' || document.execCommand('delete')) : document.execCommand('insertText', false, insert);
			const now = kind === 'editable' ? el.textContent : el.value;
			if (ok && (kind === 'editable' || now === insert)) {
				if (kind === 'text') ` + changeJS + `
				return { kind, type: t || el.tagName.toLowerCase(), inserted: true };
			}
			if (kind === 'text') el.select();
		}
	}
	return { kind, type: t || el.tagName.toLowerCase() };
}`

// typeText replaces the content of the focused, selected field with value,
// then fires change as leaving the field would.
func (r *replay) typeText(ctx context.Context, keyByKey bool, delay time.Duration, value string, editable, textarea bool) error {
	if value == "" {
		del, _ := lookupKey("Delete", "")
		if err := r.s.press(ctx, del, nil); err != nil {
			return err
		}
	} else if keyByKey {
		if err := r.typeKeys(ctx, delay, value, editable || textarea); err != nil {
			return err
		}
	} else if err := r.s.do(ctx, proto.InputInsertText{Text: value}); err != nil {
		return err
	}
	if editable {
		return nil
	}
	return r.s.evalFunc(ctx, `() => {`+elementJS+`
		`+changeJS+`
	}`, nil)
}

// setChecked makes a checkbox or radio checked or not as value says.
func (r *replay) setChecked(ctx context.Context, value string, fk fieldKind) error {
	v := strings.ToLower(strings.TrimSpace(value))
	want := v == "true" || v == "on" || v == "checked" || (value != "" && value == fk.Value)
	return r.s.evalFunc(ctx, `(want) => {`+elementJS+`
		if (el.checked !== want) el.click();
		if (el.checked !== want) throw new Error('could not make the element ' + (want ? 'checked' : 'unchecked'));
	}`, nil, want)
}

// setFile gives a file input the file at value, relative to FilesDir.
func (r *replay) setFile(ctx context.Context, value string) error {
	files, err := r.uploadFiles(value)
	if err != nil {
		return err
	}
	obj, err := r.s.elementObject(ctx)
	if err != nil {
		return err
	}
	return r.s.do(ctx, proto.DOMSetFileInputFiles{Files: files, ObjectID: obj})
}

// selectSpec says which options to choose; the first list that matches
// an option wins per entry.
type selectSpec struct {
	Values  []string `json:"values,omitempty"`
	Texts   []string `json:"texts,omitempty"`
	Indexes []int    `json:"indexes,omitempty"`
	Multi   bool     `json:"multi,omitempty"`
	Entries []struct {
		Value string `json:"value,omitempty"`
		Text  string `json:"text,omitempty"`
		Index *int   `json:"index,omitempty"`
	} `json:"entries,omitempty"`
}

const selectJS = `(spec) => {` + elementJS + `
	if (el.tagName !== 'SELECT') throw new Error('element is not a select');
	const opts = Array.from(el.options);
	const norm = (s) => String(s).replace(/\s+/g, ' ').trim();
	const find = (e) => {
		if (e.value !== undefined && e.value !== '') { const o = opts.find((o) => o.value === e.value); if (o) return o; }
		if (e.text !== undefined && e.text !== '') { const o = opts.find((o) => norm(o.text) === norm(e.text)); if (o) return o; }
		if (e.index !== undefined && e.index !== null) return opts[e.index] || null;
		return null;
	};
	const wanted = [];
	for (const v of spec.values || []) wanted.push({ value: v, text: v });
	for (const t of spec.texts || []) wanted.push({ text: t });
	for (const i of spec.indexes || []) wanted.push({ index: i });
	for (const e of spec.entries || []) wanted.push(e);
	const chosen = [];
	for (const w of wanted) {
		const o = find(w);
		if (!o) throw new Error('no option ' + JSON.stringify(w.value !== undefined ? w.value : (w.text !== undefined ? w.text : w.index)) + ' in the select');
		chosen.push(o);
		if (!spec.multi) break;
	}
	if (chosen.length === 0) throw new Error('no option to select');
	el.focus();
	if (el.multiple) { for (const o of opts) o.selected = chosen.includes(o); }
	else chosen[0].selected = true;
	el.dispatchEvent(new Event('input', { bubbles: true }));
	el.dispatchEvent(new Event('change', { bubbles: true }));
	return el.value;
}`

func (r *replay) selectOption(ctx context.Context, a *recording.Action, run *actionRun) error {
	var spec selectSpec
	switch {
	case len(a.SelectedOptions) > 0:
		spec.Multi = true
		for _, o := range a.SelectedOptions {
			spec.Entries = append(spec.Entries, struct {
				Value string `json:"value,omitempty"`
				Text  string `json:"text,omitempty"`
				Index *int   `json:"index,omitempty"`
			}{o.Value, o.Text, o.Index})
		}
	case a.SelectedValue != nil || a.SelectedText != nil || a.SelectedIndex != nil:
		var e struct {
			Value string `json:"value,omitempty"`
			Text  string `json:"text,omitempty"`
			Index *int   `json:"index,omitempty"`
		}
		if a.SelectedValue != nil {
			e.Value = substitute(*a.SelectedValue, r.opts.Variables, run)
		}
		if a.SelectedText != nil {
			e.Text = *a.SelectedText
		}
		e.Index = a.SelectedIndex
		spec.Entries = append(spec.Entries, e)
	case a.Value != nil:
		spec.Values = []string{r.inputValue(a, run)}
	default:
		return errors.New("select action has no selectedValue, selectedText or selectedIndex")
	}
	loc, err := r.s.locate(ctx, targetOf(a), modeReady, nil)
	if loc != nil {
		run.selectorUsed = loc.Used
	}
	if err != nil {
		return err
	}
	return r.s.evalFunc(ctx, selectJS, nil, spec)
}

func (r *replay) navigation(ctx context.Context, a *recording.Action) error {
	to := a.To
	if to == "" {
		to = a.URL
	}
	switch a.NavigationTrigger {
	case "back":
		return r.s.history(ctx, -1)
	case "forward":
		return r.s.history(ctx, +1)
	}
	if to == "" {
		return errors.New("navigation has no target URL")
	}
	switch a.NavigationTrigger {
	case "click", "form-submit", "redirect":
		// The previous action caused it: wait for the page to get there,
		// and go there ourselves if it does not.
		if err := r.s.waitURL(ctx, to); err == nil {
			return r.s.waitLoaded(ctx)
		} else if errors.Is(err, errCrashed) || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		// The load we start ourselves gets a budget of its own, as the
		// start page does: the action's timeout went on waiting.
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(r.opts.Timeout, setupTimeout))
		defer cancel()
		stop := context.AfterFunc(ctx, func() {
			if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				cancel()
			}
		})
		defer stop()
		return r.s.goTo(gctx, to)
	}
	if sameURL(r.s.state().url, to) {
		return r.s.waitLoaded(ctx)
	}
	return r.s.goTo(ctx, to)
}

func (r *replay) hover(ctx context.Context, a *recording.Action, run *actionRun) error {
	loc, err := r.s.pointAt(ctx, targetOf(a), nil)
	if loc != nil {
		run.selectorUsed = loc.Used
	}
	if err != nil {
		return err
	}
	// The browser may acknowledge a move before the page sees it (moves
	// are delivered with the next frame); wait for that frame so that
	// mouseover handlers have run when the action ends.
	if err := r.s.evalFunc(ctx, `() => {`+elementJS+hoveredJS+`}`, nil); err != nil && !isContextGone(err) {
		return err
	}
	if r.opts.TimingMode == TimingRealistic && a.Duration > 0 {
		return r.sleep(ctx, time.Duration(a.Duration*r.opts.timingScale()*float64(time.Millisecond)))
	}
	return nil
}

func (r *replay) scroll(ctx context.Context, a *recording.Action, run *actionRun) error {
	var x, y float64
	if a.ScrollX != nil {
		x = *a.ScrollX
	}
	if a.ScrollY != nil {
		y = *a.ScrollY
	}
	var where string
	window := len(a.Element) == 0 || (json.Unmarshal(a.Element, &where) == nil && (where == "window" || where == "document" || where == ""))
	// Scroll events fire with the next frame. Wait for ours (listeners the
	// page added earlier run before it), or briefly when nothing moved.
	script := `(x, y, onElement) => new Promise((resolve, reject) => {
		const el = onElement ? window[Symbol.for('saveaction.element')] : null;
		if (onElement && (!el || !el.isConnected)) { reject(new Error('element is no longer attached')); return; }
		const target = el || window;
		const pos = () => el ? [el.scrollLeft, el.scrollTop] : [scrollX, scrollY];
		const before = pos();
		let timer = 0;
		const done = () => { clearTimeout(timer); target.removeEventListener('scroll', done); setTimeout(() => resolve(pos()), 0); };
		target.addEventListener('scroll', done);
		if (el) el.scrollTo({ left: x, top: y, behavior: 'instant' });
		else window.scrollTo({ left: x, top: y, behavior: 'instant' });
		const after = pos();
		timer = setTimeout(done, after[0] === before[0] && after[1] === before[1] ? 0 : 1000);
	})`
	if !window {
		t, ok := targetFromJSON(a.Element)
		if !ok {
			t = targetOf(a)
		}
		loc, err := r.s.locate(ctx, t, modeLocate, nil)
		if loc != nil {
			run.selectorUsed = loc.Used
		}
		if err != nil {
			return err
		}
	}
	var got [2]float64
	if err := r.s.evalFunc(ctx, script, &got, x, y, !window); err != nil {
		return err
	}
	if abs(got[0]-x) > 1 || abs(got[1]-y) > 1 {
		run.warn("scrolled to (%g, %g) instead of (%g, %g): not enough content", got[0], got[1], x, y)
	}
	return nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func (r *replay) keypress(ctx context.Context, a *recording.Action) error {
	k, err := lookupKey(a.Key, a.Code)
	if err != nil {
		return err
	}
	before := r.s.state()
	if err := r.s.press(ctx, k, a.Modifiers); err != nil {
		return fmt.Errorf("press %s: %w", a.Key, err)
	}
	return r.s.settle(ctx, before)
}

func (r *replay) submit(ctx context.Context, a *recording.Action, run *actionRun) error {
	loc, err := r.s.locate(ctx, targetOf(a), modeLocate, nil)
	if loc != nil {
		run.selectorUsed = loc.Used
	}
	if err != nil {
		return err
	}
	before := r.s.state()
	err = r.s.evalFunc(ctx, `() => {`+elementJS+`
		const form = el.tagName === 'FORM' ? el : (el.form || el.closest('form'));
		if (!form) throw new Error('element is not in a form');
		if (!form.noValidate && !form.checkValidity()) {
			const bad = form.querySelector(':invalid');
			throw new Error('form is invalid' + (bad ? ': ' + (bad.name || bad.id || bad.tagName.toLowerCase()) + ': ' + bad.validationMessage : ''));
		}
		form.requestSubmit();
	}`, nil)
	if err != nil && !isContextGone(err) {
		return err
	}
	return r.s.settle(ctx, before)
}

func (r *replay) modal(ctx context.Context, a *recording.Action) error {
	if a.Event != "modal-opened" && a.Event != "modal-closed" {
		return skip("modal event %q is not replayed", a.Event)
	}
	var sels []string
	if a.ModalID != "" {
		sels = append(sels, "#"+cssEscapeIdent(a.ModalID))
	}
	if a.ModalSelector != "" {
		sels = append(sels, a.ModalSelector)
	}
	if len(sels) == 0 {
		sels = []string{"[role=dialog]", "dialog[open]", "[aria-modal=true]"}
	}
	wantOpen := a.Event == "modal-opened"
	wctx, cancel := context.WithTimeout(ctx, min(modalWait, r.opts.Timeout))
	defer cancel()
	var state struct {
		Found   bool `json:"found"`
		Visible bool `json:"visible"`
	}
	for attempt := 0; ; attempt++ {
		if d := pollBackoff(attempt); d > 0 {
			if err := r.s.pause(wctx, d); err != nil {
				break
			}
		}
		err := r.s.evalFunc(wctx, `(sels) => {
			const vis = (el) => { const st = getComputedStyle(el); const b = el.getBoundingClientRect();
				return st.display !== 'none' && st.visibility !== 'hidden' && b.width > 0 && b.height > 0; };
			let found = false;
			for (const s of sels) { let els = []; try { els = Array.from(document.querySelectorAll(s)); } catch (e) {}
				if (els.length) found = true;
				if (els.some(vis)) return { found: true, visible: true }; }
			return { found, visible: false };
		}`, &state, sels)
		if err == nil && state.Visible == wantOpen {
			return nil
		}
		if wctx.Err() != nil {
			break
		}
	}
	if err := r.s.crashErr(); err != nil {
		return err
	}
	if wantOpen {
		return skip("modal %s did not open within %s", strings.Join(sels, ", "), min(modalWait, r.opts.Timeout))
	}
	return skip("modal %s did not close within %s", strings.Join(sels, ", "), min(modalWait, r.opts.Timeout))
}

// cssEscapeIdent escapes an id for use after '#' in a selector.
func cssEscapeIdent(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r == '-', r >= 0x80,
			r >= '0' && r <= '9' && i > 0:
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "\\%x ", r)
		}
	}
	return b.String()
}
