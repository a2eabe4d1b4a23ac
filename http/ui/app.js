// The run page: recent runs, and one run filling in live from its event
// stream. The token lives in sessionStorage and travels only in the
// Authorization header (EventSource cannot send one, so the stream is read
// with fetch and parsed here).
"use strict";

const TOKEN_KEY = "saveaction.token";
const main = document.getElementById("main");
let leave = null; // stops the current page's timers and streams

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, opts = {}) {
  const res = await fetch(path, {
    ...opts,
    headers: { "Authorization": "Bearer " + token(), ...(opts.body ? { "Content-Type": "application/json" } : {}) },
  });
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok || !body || !body.success) {
    const e = body && body.error ? body.error : {};
    throw new APIError(res.status, e.code || "HTTP_" + res.status, e.message || res.statusText);
  }
  return body.data;
}

// words turns an API failure into a sentence for people.
function words(err) {
  if (!(err instanceof APIError)) return "The runner could not be reached. Is it running? (" + err.message + ")";
  switch (err.code) {
    case "UNAUTHORIZED": return "The token was not accepted: it is unknown, revoked or expired.";
    case "INSUFFICIENT_SCOPE": return "This token may not do that: " + err.message + ".";
    case "RUN_NOT_FOUND": return "There is no such run, or it belongs to someone else.";
    case "RATE_LIMITED": return "Too many requests for this token; trying again shortly.";
    case "DATABASE_UNAVAILABLE": return "The runner's database is not answering right now.";
    case "QUEUE_UNAVAILABLE": return "Live events are unavailable on this node right now.";
    default: return err.message || "Something went wrong (" + err.code + ").";
  }
}

const statusText = {
  queued: "Queued", running: "Running", passed: "Passed", failed: "Failed", cancelled: "Cancelled",
  success: "Passed", timeout: "Timed out", skipped: "Skipped", pending: "Pending",
};

function pill(status) {
  return el("span", { class: "pill s-" + status, "data-status": status, text: statusText[status] || status });
}

function ms(n) {
  if (n === null || n === undefined) return "";
  if (n < 1000) return n + " ms";
  if (n < 60000) return (n / 1000).toFixed(1) + " s";
  return Math.floor(n / 60000) + " min " + Math.round((n % 60000) / 1000) + " s";
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return new Date(iso).toLocaleString();
}

function showError(err) {
  if (err instanceof APIError && err.status === 401) { forget(); return; }
  main.replaceChildren(el("div", { class: "banner fail", role: "alert", text: words(err) }));
}

function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
}

// ---- login ----

function login() {
  document.getElementById("signout").hidden = true;
  main.replaceChildren(document.getElementById("tpl-login").content.cloneNode(true));
  const form = document.getElementById("login-form");
  const input = document.getElementById("token");
  const errP = document.getElementById("login-error");
  input.focus();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    errP.hidden = true;
    if (!/^sa_live_[0-9a-f]{64}$/.test(t)) {
      errP.textContent = "That does not look like a token: it starts with sa_live_ followed by 64 hex digits.";
      errP.hidden = false;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, t);
    try {
      await api("/api/v1/runs?limit=1");
      route();
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      errP.textContent = words(err);
      errP.hidden = false;
    }
  });
}

// ---- the list of runs ----

async function listPage() {
  let timer = null, stopped = false;
  leave = () => { stopped = true; clearTimeout(timer); };
  const render = (runs) => {
    const head = el("div", { class: "head" },
      el("div", {}, el("h1", { class: "title", text: "Recent runs" }),
        el("span", { class: "muted", text: "Newest first, refreshed every few seconds" })));
    if (runs.length === 0) {
      main.replaceChildren(head, el("div", { class: "card empty" },
        el("p", { class: "name", text: "No runs yet" }),
        el("p", { class: "muted" }, "Upload a recording and start a run, e.g. ",
          el("code", { text: "saveaction submit --wait recording.json" }), ".")));
      return;
    }
    const rows = runs.map((r) => {
      const open = () => { location.hash = "#/runs/" + r.id; };
      return el("tr", { onclick: open, "data-run": r.id },
        el("td", {}, pill(r.status)),
        el("td", {}, el("a", { href: "#/runs/" + r.id, class: "name", text: r.recordingName }),
          el("div", { class: "muted mono", text: r.id.slice(0, 8) })),
        el("td", { class: "muted inline-sm", text: ago(r.createdAt) }),
        el("td", { class: "muted hide-sm", text: progressText(r) }),
        el("td", { class: "muted inline-sm", text: ms(r.durationMs) || "–" }),
        el("td", { class: "muted hide-sm", text: r.triggeredBy }));
    });
    main.replaceChildren(head, el("div", { class: "card" }, el("table", { class: "runs" },
      el("thead", {}, el("tr", {}, ["Status", "Recording", "Created", "Actions", "Duration", "Trigger"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows))));
  };
  const load = async () => {
    try {
      const runs = await api("/api/v1/runs?limit=50&sortBy=createdAt&sortOrder=desc");
      if (!stopped) render(runs);
    } catch (err) {
      if (!stopped) showError(err);
    }
    if (!stopped) timer = setTimeout(load, 4000);
  };
  await load();
}

function progressText(r) {
  if (r.status === "queued") return r.actionsTotal + " to run";
  const ok = r.actionsExecuted - r.actionsFailed;
  let s = ok + " / " + r.actionsTotal + " passed";
  if (r.actionsFailed) s += ", " + r.actionsFailed + " failed";
  return s;
}

// ---- one run ----

async function runPage(id) {
  const ctl = new AbortController();
  leave = () => ctl.abort();
  let run, actions;
  try {
    [run, actions] = await Promise.all([api("/api/v1/runs/" + id), api("/api/v1/runs/" + id + "/actions")]);
  } catch (err) { showError(err); return; }
  if (ctl.signal.aborted) return;

  const state = { run, attempt: run.attempt, current: -1, notes: [] };
  const rows = new Map();
  const list = el("ol", { class: "actions", id: "actions" });
  for (const a of actions) {
    const li = el("li", { "data-index": a.actionIndex, "data-status": a.status });
    rows.set(a.actionIndex, { li, a });
    list.append(li);
    paintAction(li, a);
  }
  const title = el("h1", { class: "title", text: run.recordingName });
  const statusBox = el("span", { id: "run-status" });
  const live = el("span", { class: "live", id: "live" });
  const cancelBtn = el("button", { class: "secondary", type: "button", text: "Cancel run", hidden: true });
  const banner = el("div", { id: "banner" });
  const summary = el("div", { class: "summary" });
  const bar = el("div", { class: "bar" }, el("i"));
  const notes = el("div", { id: "notes" });
  const artifacts = el("div", { class: "section", id: "artifacts" });
  main.replaceChildren(
    el("p", {}, el("a", { href: "#/", text: "← All runs" })),
    el("div", { class: "head" },
      el("div", {}, title, el("div", { class: "muted mono", text: run.recordingUrl || "" })),
      el("div", { class: "head-right" }, live, statusBox, cancelBtn)),
    banner, summary, bar,
    el("div", { class: "card" }, notes, list),
    artifacts);

  cancelBtn.addEventListener("click", async () => {
    cancelBtn.disabled = true;
    try { state.run = await api("/api/v1/runs/" + id + "/cancel", { method: "POST" }); paintRun(); }
    catch (err) { banner.replaceChildren(el("div", { class: "banner fail", role: "alert", text: words(err) })); }
    cancelBtn.disabled = false;
  });

  function paintRun() {
    const r = state.run;
    statusBox.replaceChildren(pill(r.status));
    cancelBtn.hidden = !(r.status === "queued" || r.status === "running");
    const done = [...rows.values()].filter((x) => x.a.status !== "pending").length;
    const total = rows.size || r.actionsTotal || 0;
    bar.className = "bar" + (r.status === "failed" ? " failed" : "");
    bar.firstChild.style.width = (total ? Math.round((100 * done) / total) : 0) + "%";
    const failed = [...rows.values()].filter((x) => x.a.status === "failed" || x.a.status === "timeout").length;
    const passed = [...rows.values()].filter((x) => x.a.status === "success").length;
    summary.replaceChildren(
      el("div", {}, el("b", { text: passed + " / " + total }), el("span", { text: "actions passed" })),
      el("div", {}, el("b", { text: String(failed) }), el("span", { text: "failed" })),
      el("div", {}, el("b", { text: ms(r.durationMs) || (r.startedAt ? "…" : "–") }), el("span", { text: "duration" })),
      el("div", {}, el("b", { text: "#" + (r.attempt || 0) }), el("span", { text: r.workerNode ? "attempt on " + r.workerNode : "attempt" })));
    let b;
    switch (r.status) {
      case "queued":
        b = el("div", { class: "banner wait", text: r.attempt > 0
          ? "Back in the queue: waiting for a worker to pick it up again (attempt " + (r.attempt + 1) + ")."
          : "Waiting for a worker to pick it up." });
        break;
      case "running":
        b = el("div", { class: "banner info", text: r.cancelRequestedAt ? "Cancel requested; waiting for the worker to stop."
          : "Running on " + (r.workerNode || "a worker") + (r.attempt > 1 ? ", attempt " + r.attempt : "") + "." });
        break;
      case "passed":
        b = el("div", { class: "banner pass", text: "Every action passed" + (r.durationMs ? " in " + ms(r.durationMs) : "") + "." });
        break;
      case "failed": {
        const at = r.errorActionId ? [...rows.values()].find((x) => x.a.actionId === r.errorActionId) : null;
        b = el("div", { class: "banner fail", role: "alert" },
          el("b", { text: at ? "Failed at action " + (at.a.actionIndex + 1) + " (" + at.a.actionType + "): " : "Failed: " }),
          r.errorMessage || "no reason was recorded");
        break;
      }
      case "cancelled":
        b = el("div", { class: "banner wait", text: "Cancelled" + (r.actionsExecuted ? " after " + r.actionsExecuted + " of " + r.actionsTotal + " actions" : " before it ran") + "." });
        break;
    }
    banner.replaceChildren(b || "");
  }

  function onEvent(name, d) {
    switch (name) {
      case "run.started":
        if (d.attempt !== state.attempt) {
          // A new attempt rewrites every row.
          for (const x of rows.values()) { x.a = { ...x.a, status: "pending", durationMs: null, selectorUsed: null, errorMessage: null }; paintAction(x.li, x.a); }
        }
        state.attempt = d.attempt;
        state.run = { ...state.run, status: "running", attempt: d.attempt, workerNode: d.worker };
        break;
      case "action.started": {
        const x = rows.get(d.index);
        if (x) { x.a = { ...x.a, status: "running" }; paintAction(x.li, x.a); x.li.scrollIntoView({ block: "nearest" }); }
        break;
      }
      case "action.finished": {
        const x = rows.get(d.index);
        if (x) {
          x.a = { ...x.a, status: d.status, durationMs: d.durationMs, selectorUsed: d.selectorUsed || null, errorMessage: d.error || null };
          paintAction(x.li, x.a);
        }
        break;
      }
      case "run.retrying":
        notes.append(el("div", { class: "note", text: "Attempt " + d.nextAttempt + " follows: " + d.reason }));
        state.run = { ...state.run, status: "queued" };
        break;
      case "run.finished":
        state.run = { ...state.run, status: d.status, durationMs: d.durationMs, errorMessage: d.error || null,
          errorActionId: d.errorActionId || null, actionsExecuted: d.actionsExecuted, actionsTotal: d.actionsTotal };
        break;
    }
    paintRun();
  }

  paintRun();
  const ended = await follow(id, ctl.signal, onEvent, (s) => {
    live.className = "live" + (s === "live" ? " on" : "");
    live.textContent = { live: "Live", reconnecting: "Reconnecting…", ended: "" }[s] || "";
  });
  if (!ended || ctl.signal.aborted) return;
  // The row has the final word (and the artifacts).
  try {
    const [r, acts] = await Promise.all([api("/api/v1/runs/" + id), api("/api/v1/runs/" + id + "/actions")]);
    if (ctl.signal.aborted) return;
    state.run = r;
    for (const a of acts) { const x = rows.get(a.actionIndex); if (x) { x.a = a; paintAction(x.li, a); } }
    paintRun();
    paintArtifacts(artifacts, r);
  } catch (_) { /* the live view stays */ }
}

function paintAction(li, a) {
  const icon = { success: "✓", failed: "✕", timeout: "!", skipped: "–", running: "", pending: "" }[a.status] || "";
  li.dataset.status = a.status;
  li.classList.toggle("current", a.status === "running");
  const what = el("div", { class: "what" },
    el("span", { class: "type", text: a.actionType }), " ", el("span", { class: "muted mono", text: a.actionId }),
    a.selectorUsed ? el("span", { class: "sel", text: "found by " + a.selectorUsed }) : null,
    a.status === "skipped" && a.errorMessage ? el("span", { class: "muted", text: " — " + a.errorMessage }) : null,
    a.errorMessage && a.status !== "skipped" ? el("span", { class: "err", text: a.errorMessage }) : null);
  li.replaceChildren(
    el("span", { class: "idx", text: String(a.actionIndex + 1) }),
    el("span", { class: "icon", title: statusText[a.status] || a.status, text: icon }),
    what,
    el("span", { class: "time", text: a.status === "running" ? "running…" : ms(a.durationMs) }));
}

// paintArtifacts shows the run's video and screenshots: served ones are
// fetched with the token and shown; those only stored on the worker are
// named honestly.
function paintArtifacts(box, r) {
  const items = [];
  const served = (u) => typeof u === "string" && u.startsWith("/api/");
  if (r.videoUrl) {
    if (served(r.videoUrl)) {
      const v = el("video", { controls: true });
      blob(r.videoUrl).then((u) => { v.src = u; });
      items.push(v);
    } else items.push(el("p", { class: "muted" }, "Video recorded on the worker: ", el("code", { text: r.videoUrl })));
  }
  for (const s of r.screenshots || []) {
    if (served(s)) {
      const img = el("img", { alt: "screenshot" });
      blob(s).then((u) => { img.src = u; });
      items.push(img);
    } else items.push(el("p", { class: "muted" }, "Screenshot on the worker: ", el("code", { text: s })));
  }
  if (!items.length) { box.replaceChildren(); return; }
  box.replaceChildren(el("h2", { text: "Artifacts" }), el("div", { class: "card artifacts" }, items));
}

async function blob(path) {
  const res = await fetch(path, { headers: { "Authorization": "Bearer " + token() } });
  if (!res.ok) throw new Error(res.statusText);
  return URL.createObjectURL(await res.blob());
}

// follow reads the run's event stream until run.finished, reconnecting
// with Last-Event-ID when it breaks. It resolves true once the run ended.
async function follow(id, signal, onEvent, onState) {
  let last = "", failures = 0;
  while (!signal.aborted) {
    try {
      const headers = { "Authorization": "Bearer " + token(), "Accept": "text/event-stream" };
      if (last) headers["Last-Event-ID"] = last;
      const res = await fetch("/api/v1/runs/" + id + "/events", { headers, signal, cache: "no-store" });
      if (res.status === 401) { forget(); return false; }
      if (!res.ok) throw new Error("HTTP " + res.status);
      onState("live");
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(buf[i] === "\r" ? i + 4 : i + 2);
          const ev = { id: "", name: "", data: [] };
          for (const line of block.split(/\r?\n/)) {
            if (!line || line[0] === ":") continue;
            const c = line.indexOf(":");
            const field = c < 0 ? line : line.slice(0, c);
            const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
            if (field === "id") ev.id = val;
            else if (field === "event") ev.name = val;
            else if (field === "data") ev.data.push(val);
          }
          if (!ev.name) continue;
          if (ev.id) last = ev.id;
          failures = 0;
          let d = {};
          try { d = JSON.parse(ev.data.join("\n") || "{}"); } catch (_) { /* keep {} */ }
          onEvent(ev.name, d);
          if (ev.name === "run.finished") { onState("ended"); reader.cancel().catch(() => {}); return true; }
        }
      }
    } catch (err) {
      if (signal.aborted) return false;
    }
    failures++;
    onState("reconnecting");
    await new Promise((r) => setTimeout(r, Math.min(failures, 5) * 1000));
  }
  return false;
}

// ---- routing ----

function route() {
  if (leave) { leave(); leave = null; }
  if (!token()) { login(); return; }
  document.getElementById("signout").hidden = false;
  const m = location.hash.match(/^#\/runs\/([0-9a-f-]{36})$/);
  if (m) runPage(m[1]); else listPage();
}

document.getElementById("signout").addEventListener("click", forget);
window.addEventListener("hashchange", route);
route();
