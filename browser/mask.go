package browser

import (
	"context"
	"sort"
	"strings"

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

// coverSecretsJS lays black boxes over every field and every piece of
// text that shows a secret (in the document and its open shadow roots),
// for one capture; it returns how many boxes it laid.
const coverSecretsJS = `(secrets) => {
	const boxes = [];
	const add = (r) => { if (r.width > 0 && r.height > 0) boxes.push(r); };
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
	walk(document);
	if (!boxes.length) return 0;
	const layer = document.createElement('div');
	layer.setAttribute('data-saveaction-mask-layer', '');
	layer.style.cssText = 'position:fixed;left:0;top:0;width:0;height:0;overflow:visible;pointer-events:none;z-index:2147483647';
	for (const r of boxes) {
		const d = document.createElement('div');
		d.style.cssText = 'position:fixed;background:#000;left:' + (r.left - 2) + 'px;top:' + (r.top - 2) + 'px;width:' + (r.width + 4) + 'px;height:' + (r.height + 4) + 'px';
		layer.appendChild(d);
	}
	document.documentElement.appendChild(layer);
	return boxes.length;
}`

const uncoverSecretsJS = `() => { for (const e of document.querySelectorAll('[data-saveaction-mask-layer]')) e.remove(); }`

// coverSecrets prepares the page for a screenshot. It returns the function
// that takes the boxes away again, or an error: the caller must then not
// capture, since the secrets may show.
func (r *replay) coverSecrets(ctx context.Context) (func(), error) {
	if len(r.secrets) == 0 {
		return func() {}, nil
	}
	var n int
	if err := r.s.evalFunc(ctx, coverSecretsJS, &n, r.secrets); err != nil {
		return nil, err
	}
	if n == 0 {
		return func() {}, nil
	}
	return func() { _ = r.s.evalFunc(ctx, uncoverSecretsJS, nil) }, nil
}
