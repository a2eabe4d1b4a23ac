// Evaluated as an expression that yields one function. It locates an
// element by a list of strategies and optionally checks that it can be
// acted on: mode "locate" finds only; "ready" also requires it visible and
// enabled and scrolls it into view; "point" also picks the point to click
// and hit-tests it; "verify" re-checks the remembered element after the
// pointer moved (same box, point still hits it). CSS, id, attribute and
// text strategies also search open shadow roots at any depth (closed ones
// are out of reach); XPath searches the light DOM only. It has no effect on the
// page beyond scrolling the element into view and remembering the element
// under a private symbol for the action that follows.
(async function (spec) {
  const KEY = Symbol.for('saveaction.element');
  const norm = (s) => String(s == null ? '' : s).replace(/\s+/g, ' ').trim();
  const rawText = (el) => norm(el.textContent);
  const cssAttr = (v) => '"' + String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  // Open shadow roots of the document at any depth, found once per call.
  let roots = null;
  const shadowRoots = () => {
    if (roots) return roots;
    roots = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll('*')) {
        if (el.shadowRoot) { roots.push(el.shadowRoot); walk(el.shadowRoot); }
      }
    };
    walk(document);
    return roots;
  };
  // Matches of sel in the document, then in each open shadow root (where
  // shadowSel, when given, replaces a selector that names the document's
  // own structure, such as 'body *').
  const all = (sel, shadowSel) => {
    const out = Array.from(document.querySelectorAll(sel));
    for (const r of shadowRoots()) out.push(...r.querySelectorAll(shadowSel || sel));
    return out;
  };
  // The parent of a node across shadow boundaries (a shadow root's host).
  const up = (n) => n.parentElement || (n.parentNode && n.parentNode.host) || null;
  const composedContains = (a, b) => { for (let n = b; n; n = n.parentNode || n.host) if (n === a) return true; return false; };
  const isVisible = (el) => {
    if (!el.isConnected) return false;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.visibility === 'collapse' || st.display === 'none') return false;
    if (el.checkVisibility && !el.checkVisibility()) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  // Deepest elements whose text satisfies pred (an ancestor holding only
  // that text would match too; the innermost is the one recorded).
  const byText = (pred, candidates) => {
    const els = (candidates || all('body *', '*')).filter((el) => {
      const t = el.tagName;
      return t !== 'SCRIPT' && t !== 'STYLE' && t !== 'NOSCRIPT' && t !== 'TEMPLATE' && pred(rawText(el));
    });
    const hasInner = new Set();
    for (const el of els) for (let p = up(el); p && !hasInner.has(p); p = up(p)) hasInner.add(p);
    return els.filter((el) => !hasInner.has(el));
  };
  const xpath = (expr) => {
    const res = document.evaluate(expr, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
    const out = [];
    for (let i = 0; i < res.snapshotLength; i++) {
      const n = res.snapshotItem(i);
      if (n.nodeType === 1) out.push(n);
    }
    return out;
  };
  const contextMatch = (el, ctx) => {
    if (!ctx) return true;
    let classes = [], tag = '';
    if (Array.isArray(ctx)) classes = ctx;
    else if (typeof ctx === 'object') {
      if (ctx.classList || ctx.classes || ctx.className) classes = [].concat(ctx.classList || ctx.classes || String(ctx.className).split(/\s+/));
      tag = ctx.tagName || ctx.tag || '';
    } else {
      const s = String(ctx).trim();
      if (/^[a-zA-Z][a-zA-Z0-9-]*$/.test(s) && !s.includes('-')) tag = s;
      else classes = s.split(/[\s.]+/);
    }
    classes = classes.map((c) => String(c).replace(/^\./, '')).filter(Boolean);
    for (let n = el; n && n.nodeType === 1; n = up(n)) {
      const tagOK = !tag || n.tagName.toLowerCase() === String(tag).toLowerCase();
      const clsOK = classes.every((c) => n.classList.contains(c));
      if (tagOK && clsOK) return true;
    }
    return false;
  };
  const position = (v) => {
    if (!v || typeof v !== 'object' || !v.parent) return [];
    const parent = all(v.parent)[0];
    if (!parent) return [];
    const child = parent.children[Number(v.index) || 0];
    return child ? [child] : [];
  };
  const find = (s) => {
    const v = s.value;
    switch (s.kind) {
      case 'id': return all('#' + CSS.escape(String(v).replace(/^#/, '')));
      case 'testid': return all(['data-testid', 'data-test', 'data-cy'].map((a) => '[' + a + '=' + cssAttr(v) + ']').join(','));
      case 'aria': return all('[aria-label=' + cssAttr(v) + ']');
      case 'name': return all('[name=' + cssAttr(v) + ']');
      case 'css': return all(String(v));
      case 'xpath': return xpath(String(v));
      case 'text': { const want = norm(v); return byText((t) => t === want); }
      case 'textContains': { const want = norm(v).toLowerCase(); return byText((t) => t.toLowerCase().includes(want)); }
      case 'textContent': {
        const want = norm(v).toLowerCase();
        const els = byText((t) => t.toLowerCase() === want);
        return els.filter((el) => contextMatch(el, s.context));
      }
      case 'href': return all('a[href*=' + cssAttr(v) + ']');
      case 'src': return all('img[src*=' + cssAttr(v) + ']');
      case 'semantic': {
        const m = /^(.*?):has-text\((['"])(.*)\2\)\s*$/.exec(String(v));
        if (!m) return all(String(v));
        const want = norm(m[3]).toLowerCase();
        return all(m[1] || '*').filter((el) => rawText(el).toLowerCase().includes(want));
      }
      case 'position': return position(v);
    }
    return [];
  };
  const pick = (s, els) => {
    if (spec.textFilter && els.length > 1) {
      const want = norm(spec.textFilter).toLowerCase();
      const f = els.filter((el) => rawText(el).toLowerCase().includes(want));
      if (f.length) els = f;
    }
    if (els.length === 0) return null;
    if (s.exact) return els.length === 1 ? els[0] : null;
    return els.find(isVisible) || els[0];
  };

  // counts[i] is how many elements strategy i matched (-1: it threw),
  // for the strategies tried; index is the one that matched.
  let el = null, used = '', count = 0, tried = [], counts = [], index = -1, xpathShadow = false;
  if (spec.reuse) {
    el = window[KEY];
    if (!el || !el.isConnected) return { state: 'notfound', reason: 'element is no longer attached' };
    used = spec.reuse;
  } else {
    for (const [i, s] of spec.strategies.entries()) {
      let els;
      try { els = find(s); } catch (e) { counts.push(-1); tried.push(s.label + ' (invalid: ' + (e && e.message || e) + ')'); continue; }
      counts.push(els.length);
      const got = pick(s, els);
      if (got) { el = got; used = s.label; count = els.length; index = i; break; }
      if (els.length === 0 && s.kind === 'xpath' && shadowRoots().length > 0) {
        xpathShadow = true;
        tried.push(s.label + ' (no match; XPath does not search shadow roots)');
      } else {
        tried.push(s.label + (els.length > 1 ? ' (' + els.length + ' matches, needs exactly one)' : ' (no match)'));
      }
    }
    if (!el) return { state: 'notfound', tried, counts, index, xpathShadow };
    window[KEY] = el;
  }
  const describe = (n) => {
    if (!n || n.nodeType !== 1) return String(n);
    let d = n.tagName.toLowerCase();
    if (n.id) d += '#' + n.id;
    if (typeof n.className === 'string' && n.className.trim()) d += '.' + n.className.trim().split(/\s+/).join('.');
    return d;
  };
  const out = { state: 'ok', used, count, tried, counts, index, tag: el.tagName.toLowerCase(), desc: describe(el) };
  if (spec.mode === 'locate') { out.visible = isVisible(el); return out; }

  // A document still being parsed (a frame's: the runner waits for the
  // main frame's DOMContentLoaded) may not have run the scripts after the
  // element yet, such as those adding its listeners.
  if (document.readyState === 'loading') return Object.assign(out, { state: 'notready', reason: 'its document is still loading' });

  if (!isVisible(el)) return Object.assign(out, { state: 'notready', reason: 'element is not visible' });
  if (el.matches(':disabled')) return Object.assign(out, { state: 'notready', reason: 'element is disabled' });

  const inView = (r) => r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
  let r2 = el.getBoundingClientRect();
  if (spec.mode === 'verify') {
    // Stable: the box is the one measured at least one animation frame
    // ago. The pointer move sent alongside is delivered at the start of
    // that frame, before its animation-frame callbacks.
    for (let i = 0; i < 3 && document.timeline.currentTime === spec.frame; i++) {
      await new Promise((res) => { requestAnimationFrame(() => res()); setTimeout(res, 100); });
    }
    // No frame since the first measure: nothing proves the box is still.
    // Report not ready and let the poll measure again.
    if (document.timeline.currentTime === spec.frame) {
      return Object.assign(out, { state: 'notready', reason: 'element is not stable yet (no animation frame since it was measured)' });
    }
    r2 = el.getBoundingClientRect();
    const b = spec.box;
    if (r2.x !== b.x || r2.y !== b.y || r2.width !== b.width || r2.height !== b.height) {
      return Object.assign(out, { state: 'notready', reason: 'element is not stable (moving)' });
    }
    if (spec.hover) {
      for (let i = 0; i < 3 && !el.matches(':hover'); i++) {
        await new Promise((res) => { requestAnimationFrame(() => res()); setTimeout(res, 100); });
      }
      if (!el.matches(':hover')) return Object.assign(out, { state: 'notready', reason: 'the pointer does not reach the element in its frame' });
    }
  } else if (!inView(r2)) {
    el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
    r2 = el.getBoundingClientRect();
  }
  out.box = { x: r2.x, y: r2.y, width: r2.width, height: r2.height };
  out.frame = document.timeline.currentTime;
  if (spec.mode === 'ready') return out;

  // Point to act at: the recorded offset inside the box, else the centre;
  // if something else is on top there, try the centre; covered is not ready.
  // The element at a point, looking into open shadow roots (the document
  // retargets a hit inside one to its host).
  const deepHit = (x, y) => {
    let h = document.elementFromPoint(x, y);
    while (h && h.shadowRoot) {
      const inner = h.shadowRoot.elementFromPoint(x, y);
      if (!inner || inner === h) break;
      h = inner;
    }
    return h;
  };
  const hits = (x, y) => {
    const h = deepHit(x, y);
    if (!h) return false;
    if (composedContains(el, h)) return true;
    if (h.tagName === 'LABEL' && h.control === el) return true;
    const top = document.elementFromPoint(x, y);
    return !!top && (top === el || el.contains(top));
  };
  const cx = r2.left + r2.width / 2, cy = r2.top + r2.height / 2;
  const cands = [];
  if (spec.offset && spec.offset.x >= 0 && spec.offset.y >= 0 && spec.offset.x < r2.width && spec.offset.y < r2.height) {
    cands.push([r2.left + spec.offset.x, r2.top + spec.offset.y]);
  }
  cands.push([cx, cy]);
  if (spec.mode === 'verify') cands.splice(0, cands.length, [spec.point.x, spec.point.y]);
  for (const [x, y] of cands) {
    if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
    if (hits(x, y)) return Object.assign(out, { x, y });
  }
  const top = deepHit(cx, cy);
  return Object.assign(out, { state: 'notready', reason: 'element is covered by ' + describe(top) });
})
