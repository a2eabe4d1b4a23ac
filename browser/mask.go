package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-rod/rod/lib/proto"
	"github.com/saveaction/runner/recording"
)

// minSecretLen is the shortest secret searched for in messages and on the
// page: a one- or two-character value would match everywhere and black
// out the screenshot. Fields typed into are masked whatever the length.
const minSecretLen = 3

// redactedText replaces a secret in messages.
const redactedText = "[redacted]"

// collectSecrets returns the run's secret values, longest first: every
// variable's value and the value of every input marked isSensitive (after
// its placeholders are filled).
func (r *replay) collectSecrets(actions []recording.Action) []string {
	seen := map[string]bool{}
	var out []string
	add := func(v string) {
		if len(v) >= minSecretLen && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, v := range r.opts.Variables {
		add(v)
	}
	for i := range actions {
		if a := &actions[i]; a.IsSensitive {
			add(r.inputValue(a, &actionRun{}))
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// redact removes the run's secrets from a message.
func (r *replay) redact(s string) string {
	for _, secret := range r.secrets {
		if strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, redactedText)
		}
	}
	return s
}

// redactResult removes the run's secrets from what an action reports.
func (r *replay) redactResult(ar ActionResult) ActionResult {
	if len(r.secrets) == 0 {
		return ar
	}
	ar.Error, ar.Reason = r.redact(ar.Error), r.redact(ar.Reason)
	if len(ar.Warnings) > 0 {
		w := make([]string, len(ar.Warnings))
		for i, s := range ar.Warnings {
			w[i] = r.redact(s)
		}
		ar.Warnings = w
	}
	return ar
}

// secretInput reports whether an input action types a secret: marked
// sensitive, filled from a variable, or holding a variable's value.
func (r *replay) secretInput(a *recording.Action, value string) bool {
	if a.IsSensitive {
		return true
	}
	if _, ok := r.opts.Variables[a.VariableName]; ok && a.VariableName != "" {
		return true
	}
	for _, v := range r.opts.Variables {
		if v != "" && strings.Contains(value, v) {
			return true
		}
	}
	return false
}

// maskFieldJS blacks out the located element's box for as long as the
// document lives, before the secret is typed into it, so that no
// screenshot or video frame shows it.
const maskFieldJS = `() => {
	const el = window[Symbol.for('saveaction.element')];
	if (!el || !el.isConnected) throw new Error('element is no longer attached');
	el.setAttribute('data-saveaction-masked', '');
	const root = el.getRootNode();
	const host = root instanceof ShadowRoot ? root : (document.head || document.documentElement);
	if (!host.querySelector(':scope > style[data-saveaction-mask]')) {
		const st = document.createElement('style');
		st.setAttribute('data-saveaction-mask', '');
		st.textContent = '[data-saveaction-masked]{background:#000!important;color:#000!important;' +
			'-webkit-text-fill-color:#000!important;caret-color:#000!important;text-shadow:none!important;' +
			'border-color:#000!important;outline-color:#000!important}';
		host.appendChild(st);
	}
}`

// maskField masks the located element (see maskFieldJS).
func (r *replay) maskField(ctx context.Context) error {
	return r.s.evalFunc(ctx, maskFieldJS, nil)
}

// maskWorld is the isolated world the masking scripts run in: they share
// the page's DOM but not its JavaScript, so a page that patches built-ins
// (String.prototype.includes, say) never sees the secrets they look for.
const maskWorld = "saveaction-mask"

// secretBoxesJS defines boxes(): the viewport rectangles of every field
// and every piece of text that shows a secret, in the document and its
// open shadow roots; and cover(rects): the layer of black boxes over them.
const secretBoxesJS = `
	const boxes = () => {
		const out = [];
		const add = (r) => { if (r.width > 0 && r.height > 0) out.push(r); };
		const has = (s) => typeof s === 'string' && secrets.some((x) => s.includes(x));
		const walk = (root) => {
			for (const el of root.querySelectorAll('input, textarea, select, [contenteditable]')) {
				if (has(el.value) || (el.isContentEditable && has(el.textContent))) add(el.getBoundingClientRect());
			}
			const tw = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
			for (let n = tw.nextNode(); n; n = tw.nextNode()) {
				const t = n.nodeValue || '';
				for (const x of secrets) {
					for (let i = t.indexOf(x); i >= 0; i = t.indexOf(x, i + x.length)) {
						const rg = document.createRange();
						rg.setStart(n, i);
						rg.setEnd(n, i + x.length);
						for (const r of rg.getClientRects()) add(r);
					}
				}
			}
			for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
		};
		if (document.documentElement) walk(document);
		return out;
	};
	const cover = (layer, rects) => {
		layer.setAttribute('data-saveaction-mask-layer', '');
		layer.style.cssText = 'position:fixed;left:0;top:0;width:0;height:0;overflow:visible;pointer-events:none;z-index:2147483647';
		layer.replaceChildren(...rects.map((r) => {
			const d = document.createElement('div');
			d.style.cssText = 'position:fixed;background:#000;left:' + (r.left - 2) + 'px;top:' + (r.top - 2) + 'px;width:' + (r.width + 4) + 'px;height:' + (r.height + 4) + 'px';
			return d;
		}));
		return layer;
	};`

// coverSecretsJS lays the boxes once, for a screenshot, and returns how
// many it laid.
const coverSecretsJS = `(secrets) => {` + secretBoxesJS + `
	const rects = boxes();
	if (!rects.length) return 0;
	document.documentElement.appendChild(cover(document.createElement('div'), rects));
	return rects.length;
}`

const uncoverSecretsJS = `() => { for (const e of document.querySelectorAll('[data-saveaction-mask-layer]:not([data-saveaction-live])')) e.remove(); }`

// liveMaskJS keeps the boxes over the secrets for as long as the document
// lives, redrawn (once per frame at most) when the page changes, scrolls
// or is typed into, so that the video never shows a secret the page
// echoes. It is installed in every new document of a run with a video.
const liveMaskJS = `(secrets) => {
	if (window.__saveactionMask) return;
	window.__saveactionMask = true;` + secretBoxesJS + `
	const layer = document.createElement('div');
	layer.setAttribute('data-saveaction-live', '');
	let pending = false;
	const draw = () => {
		pending = false;
		const rects = boxes();
		cover(layer, rects);
		if (rects.length && !layer.isConnected && document.documentElement) document.documentElement.appendChild(layer);
		if (!rects.length && layer.isConnected) layer.remove();
	};
	const schedule = () => { if (!pending) { pending = true; requestAnimationFrame(draw); } };
	const ours = (m) => m.target === layer || layer.contains(m.target) ||
		(m.type === 'childList' && [...m.addedNodes, ...m.removedNodes].every((n) => n === layer));
	new MutationObserver((ms) => { if (!ms.every(ours)) schedule(); })
		.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
	addEventListener('scroll', schedule, true);
	addEventListener('resize', schedule);
	addEventListener('input', schedule, true);
	schedule();
}`

// evalMasking runs a masking function with args in the page's main frame,
// in the isolated masking world.
func (r *replay) evalMasking(ctx context.Context, fn string, out any, args ...any) error {
	cctx, cancel := r.s.callCtx(ctx)
	defer cancel()
	c := r.s.client(cctx)
	w, err := proto.PageCreateIsolatedWorld{FrameID: proto.PageFrameID(r.s.targetID), WorldName: maskWorld}.Call(c)
	if err != nil {
		return r.s.callError(ctx, err)
	}
	expr, err := callExpr(fn, args...)
	if err != nil {
		return err
	}
	res, err := proto.RuntimeEvaluate{Expression: expr, ContextID: w.ExecutionContextID, ReturnByValue: true}.Call(c)
	if err != nil {
		return r.s.callError(ctx, err)
	}
	if res.ExceptionDetails != nil {
		return errors.New(exceptionText(res.ExceptionDetails))
	}
	if out != nil && res.Result != nil {
		return json.Unmarshal([]byte(res.Result.Value.JSON("", "")), out)
	}
	return nil
}

func callExpr(fn string, args ...any) (string, error) {
	var b strings.Builder
	b.WriteString("(" + fn + ")(")
	for i, a := range args {
		if i > 0 {
			b.WriteString(",")
		}
		j, err := json.Marshal(a)
		if err != nil {
			return "", fmt.Errorf("encode script argument: %w", err)
		}
		b.Write(j)
	}
	b.WriteString(")")
	return b.String(), nil
}

// coverSecrets prepares the page for a screenshot. It returns the function
// that takes the boxes away again, or an error: the caller must then not
// capture, since the secrets may show.
func (r *replay) coverSecrets(ctx context.Context) (func(), error) {
	if len(r.secrets) == 0 {
		return func() {}, nil
	}
	var n int
	if err := r.evalMasking(ctx, coverSecretsJS, &n, r.secrets); err != nil {
		return nil, err
	}
	if n == 0 {
		return func() {}, nil
	}
	return func() { _ = r.evalMasking(ctx, uncoverSecretsJS, nil) }, nil
}

// maskVideo installs liveMaskJS in every document the run opens, when the
// run records a video and has secrets. It is called before the start page
// loads.
func (r *replay) maskVideo(ctx context.Context) error {
	if r.opts.VideoDir == "" || len(r.secrets) == 0 {
		return nil
	}
	expr, err := callExpr(liveMaskJS, r.secrets)
	if err != nil {
		return err
	}
	cctx, cancel := r.s.callCtx(ctx)
	defer cancel()
	if _, err := (proto.PageAddScriptToEvaluateOnNewDocument{Source: expr, WorldName: maskWorld}).Call(r.s.client(cctx)); err != nil {
		return r.s.callError(ctx, err)
	}
	return nil
}
