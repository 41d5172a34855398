// Warren's web console: a few pages over the gateway's own API, no framework, no build step.
// The API key lives in sessionStorage and goes out as the Bearer header; live updates come
// from GET /v1/console/events (Server-Sent Events read with fetch, since EventSource cannot
// send a header). Every value shown is set as text, never as HTML.
"use strict";

const KEY = "warren.token";
const STATUSES = ["queued", "running", "retrying", "succeeded", "dead", "cancelled"];
const state = { page: null, stream: null, refresh: null };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : String(c ?? ""));
  return el;
}

const token = () => sessionStorage.getItem(KEY);

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const response = await fetch(path, { ...options, headers, body });
  if (response.status === 401) { signOut(); throw new Error("the API key was refused"); }
  const data = await response.json();
  if (!response.ok) throw new Error(data.detail || data.title || `HTTP ${response.status}`);
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "");

// --- live updates -------------------------------------------------------------------

async function listen() {
  const controller = new AbortController();
  state.stream = controller;
  const live = document.getElementById("live");
  while (!controller.signal.aborted) {
    try {
      const response = await fetch("/v1/console/events", {
        headers: { Authorization: `Bearer ${token()}` }, signal: controller.signal,
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      live.textContent = "live"; live.className = "on";
      await readEvents(response.body.getReader());
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    live.textContent = "reconnecting"; live.className = "muted";
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data && state.refresh) state.refresh(name, JSON.parse(data));
    }
  }
}

// --- pages --------------------------------------------------------------------------

function show(...nodes) {
  const page = document.getElementById("page");
  page.replaceChildren(...nodes);
}

function failure(error) {
  show(h("p", { class: "error" }, String(error.message || error)));
}

function queuesTable(queues) {
  const cols = ["ready", "unacked", "consumers", "retrying", "scheduled", "dead_letters"];
  return h("table", { id: "queues" },
    h("thead", {}, h("tr", {}, h("th", {}, "queue"), cols.map((c) => h("th", { class: "num" }, c.replace("_", " "))),
      ["publish/s", "deliver/s", "ack/s"].map((c) => h("th", { class: "num" }, c)))),
    h("tbody", {}, queues.map((q) => h("tr", { "data-queue": q.name },
      h("td", {}, q.name),
      cols.map((c) => h("td", { class: "num", "data-col": c }, q[c] ?? "–")),
      ["publish", "deliver", "ack"].map((k) => h("td", { class: "num" }, q.rates[k].toFixed(2)))))));
}

async function queuesPage() {
  const body = await api("/v1/queues");
  show(h("h1", {}, "Queues"), queuesTable(body.queues),
    h("p", { class: "muted note" }, "Depths from the broker (AMQP), live; unacked: tasks running; rates over the last minute."));
  state.refresh = (name, data) => {
    if (name === "queues") document.getElementById("queues").replaceWith(queuesTable(data.queues));
  };
}

function filtersForm(fields, values, onSubmit) {
  const form = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); onSubmit(new FormData(form)); } },
    fields.map(([name, label, options]) => options
      ? h("select", { name, "aria-label": label }, h("option", { value: "" }, `any ${label}`),
          options.map((o) => h("option", { value: o, selected: values[name] === o }, o)))
      : h("input", { name, placeholder: label, value: values[name] || "", "aria-label": label })),
    h("button", { type: "submit" }, "Filter"));
  return form;
}

function tasksTable(items) {
  return h("table", { id: "tasks" },
    h("thead", {}, h("tr", {}, ["id", "type", "queue", "status", "attempt", "created", "finished"].map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map((t) => h("tr", { class: "link", "data-id": t.id, onclick: () => { location.hash = `#/tasks/${t.id}`; } },
      h("td", {}, h("code", {}, t.id)), h("td", {}, t.type), h("td", {}, t.queue),
      h("td", { class: `status-${t.status}` }, t.status), h("td", {}, `${t.attempt}/${t.max_attempts}`),
      h("td", {}, when(t.created_at)), h("td", {}, when(t.finished_at))))));
}

async function tasksPage(params) {
  const filters = { status: params.get("status"), type: params.get("type"), queue: params.get("queue"), since: params.get("since") };
  const load = async () => (await api(`/v1/tasks${query({ ...filters, limit: 100 })}`)).items;
  show(h("h1", {}, "Tasks"),
    filtersForm([["status", "status", STATUSES], ["type", "type"], ["queue", "queue"], ["since", "since (ISO time)"]], filters,
      (data) => { location.hash = `#/tasks${query(Object.fromEntries(data))}`; }),
    tasksTable(await load()));
  state.refresh = debounced(async (name) => {
    if (name === "tasks") document.getElementById("tasks").replaceWith(tasksTable(await load()));
  });
}

function fields(pairs) {
  return h("dl", {}, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v ?? "")]));
}

async function taskPage(id) {
  const render = (t) => {
    const trace = t.trace_url ? h("a", { href: t.trace_url, target: "_blank", rel: "noopener" }, t.trace_id) : t.trace_id;
    return h("div", { id: "task" }, h("h1", {}, `Task ${t.id}`),
      fields([["type", t.type], ["queue", t.queue], ["status", h("span", { class: `status-${t.status}`, id: "status" }, t.status)],
        ["attempt", `${t.attempt} of ${t.max_attempts}`], ["created", when(t.created_at)], ["finished", when(t.finished_at)],
        ["reason", t.reason], ["error", t.error_type ? `${t.error_type}: ${t.error}` : ""], ["trace", trace], ["submitter", t.submitter]]),
      h("h2", {}, "Attempts"),
      h("table", { id: "attempts" }, h("thead", {}, h("tr", {}, ["#", "started", "finished", "outcome", "error", "replayed"].map((c) => h("th", {}, c)))),
        h("tbody", {}, (t.attempts || []).map((a) => h("tr", {}, h("td", {}, a.attempt), h("td", {}, when(a.started_at)),
          h("td", {}, when(a.finished_at)), h("td", {}, a.outcome || ""), h("td", {}, a.error_type ? `${a.error_type}: ${a.error}` : ""),
          h("td", {}, when(a.replayed_at)))))),
      h("h2", {}, "Result"), h("pre", {}, JSON.stringify(t.result, null, 2)));
  };
  show(render(await api(`/v1/tasks/${id}`)));
  state.refresh = debounced(async (name) => {
    if (name === "tasks") document.getElementById("task").replaceWith(render(await api(`/v1/tasks/${id}`)));
  });
}

function deadTable(items) {
  return h("table", { id: "dead" },
    h("thead", {}, h("tr", {}, h("th", {}, ""), ["id", "queue", "type", "reason", "attempts", "dead at", "bytes", "error"].map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map((x) => h("tr", { "data-id": x.id },
      h("td", {}, h("input", { type: "checkbox", value: x.id, "aria-label": `select ${x.id}` })),
      h("td", {}, h("a", { href: `#/dead/${x.id}` }, x.id)), h("td", {}, x.queue), h("td", {}, x.type), h("td", {}, x.reason),
      h("td", { class: "num" }, x.attempts), h("td", {}, when(x.dead_at)), h("td", { class: "num" }, x.payload_size),
      h("td", {}, x.error_type ? `${x.error_type}: ${x.error}` : "")))));
}

async function act(action, selection, count) {
  if (!confirm(`${action} ${count} dead letter${count === 1 ? "" : "s"}?`)) return;
  const result = await api(`/v1/dead-letters/${action}`, { method: "POST", body: selection });
  const done = result.replayed ?? result.discarded;
  document.getElementById("outcome").textContent = `${action === "replay" ? "replayed" : "discarded"} ${done}`;
}

async function deadPage(params) {
  const filters = { queue: params.get("queue"), type: params.get("type"), reason: params.get("reason"), since: params.get("since") };
  const load = async () => (await api(`/v1/dead-letters${query({ ...filters, limit: 200 })}`)).items;
  const selected = () => [...document.querySelectorAll("#dead input:checked")].map((c) => c.value);
  const reload = async () => document.getElementById("dead").replaceWith(deadTable(await load()));
  const run = (action, all) => async () => {
    const ids = selected();
    const filter = Object.fromEntries(Object.entries(filters).filter(([, v]) => v));
    const items = all ? (await load()).length : ids.length;
    if (!items) return;
    await act(action, all ? { filter } : { ids }, items).catch((e) => { document.getElementById("outcome").textContent = e.message; });
    await reload();
  };
  show(h("h1", {}, "Dead letters"),
    filtersForm([["queue", "queue"], ["type", "type"], ["reason", "reason"], ["since", "since (ISO time)"]], filters,
      (data) => { location.hash = `#/dead${query(Object.fromEntries(data))}`; }),
    h("p", { class: "filters" },
      h("button", { class: "primary", id: "replay-selected", type: "button", onclick: run("replay", false) }, "Replay selected"),
      h("button", { id: "replay-all", type: "button", onclick: run("replay", true) }, "Replay all matching"),
      h("button", { class: "danger", id: "discard-selected", type: "button", onclick: run("discard", false) }, "Discard selected"),
      h("span", { id: "outcome", class: "muted" })),
    deadTable(await load()));
  let depth = null;
  state.refresh = debounced(async (name, data) => {
    if (name !== "queues") return;
    const now = data.queues.reduce((n, q) => n + q.dead_letters, 0);
    if (depth !== null && now !== depth && !selected().length) await reload();
    depth = now;
  });
}

async function deadLetterPage(id) {
  const x = await api(`/v1/dead-letters/${id}`);
  show(h("h1", {}, `Dead letter ${x.id}`),
    fields([["queue", x.queue], ["type", x.type], ["reason", x.reason], ["error", x.error_type ? `${x.error_type}: ${x.error}` : ""],
      ["attempts", x.attempts], ["dead at", when(x.dead_at)], ["payload size", `${x.payload_size} bytes`],
      ["task", h("a", { href: `#/tasks/${x.id}` }, "its record")]]),
    h("p", { class: "filters" },
      h("button", { class: "primary", id: "replay-one", type: "button", onclick: () => act("replay", { ids: [x.id] }, 1).catch(failure) }, "Replay"),
      h("button", { class: "danger", id: "discard-one", type: "button", onclick: () => act("discard", { ids: [x.id] }, 1).catch(failure) }, "Discard"),
      h("span", { id: "outcome", class: "muted" })),
    h("h2", {}, "Payload"), h("pre", { id: "payload" }, x.payload_kept ? JSON.stringify(x.payload, null, 2) : "(over the size bound: not kept)"),
    h("h2", {}, "Headers"), h("pre", {}, JSON.stringify(x.headers, null, 2)));
  state.refresh = null;
}

function debounced(fn) {
  let timer = null, last = null;
  return (name, data) => {
    last = [name, data];
    if (!timer) timer = setTimeout(() => { timer = null; fn(...last).catch(() => {}); }, 250);
  };
}

// --- routing and sign-in ------------------------------------------------------------

async function route() {
  if (!token()) return signOut();
  const [path, search] = (location.hash.slice(1) || "/queues").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(search || "");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === parts[0]);
  state.refresh = null;
  try {
    if (parts[0] === "tasks" && parts[1]) await taskPage(parts[1]);
    else if (parts[0] === "tasks") await tasksPage(params);
    else if (parts[0] === "dead" && parts[1]) await deadLetterPage(parts[1]);
    else if (parts[0] === "dead") await deadPage(params);
    else await queuesPage();
  } catch (error) {
    failure(error);
  }
}

function signOut() {
  sessionStorage.removeItem(KEY);
  if (state.stream) state.stream.abort();
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-in").hidden = false;
  show();
}

function signedIn() {
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  listen();
  route();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in").addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("token").value.trim());
    const check = await fetch("/v1/task-types", { headers: { Authorization: `Bearer ${token()}` } });
    if (check.status === 401) {
      sessionStorage.removeItem(KEY);
      document.getElementById("sign-in-error").textContent = "this API key was refused";
      return;
    }
    signedIn();
  });
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  if (token()) signedIn(); else signOut();
});
