// strand dashboard: renders /api/v1/clusters/{c}/view and re-renders on every server-sent
// event of /admin/v2/clusters/{c}/events. No framework, no external resource.
"use strict";

const state = { cluster: null, readOnly: true, view: null, source: null, timer: null, sent: new Map() };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(method, path, body) {
  const r = await fetch(path, { method, body, headers: body ? { "content-type": "application/json" } : {} });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!r.ok) throw new Error((json && json.error) || r.status + " " + r.statusText);
  return json;
}

const time = (ms) => (ms ? new Date(Number(ms)).toISOString().replace("T", " ").replace("Z", "") : "");
const enc = encodeURIComponent;

async function act(question, method, path, body) {
  if (!window.confirm(question)) return;
  try {
    await api(method, path, body);
    note({ kind: "action", action: question.replace(/\?$/, ""), at_ms: Date.now() });
  } catch (e) {
    note({ kind: "action", action: "failed: " + e.message, at_ms: Date.now() });
  }
  refreshSoon();
}

function clusterPath(suffix) { return "/admin/v2/clusters/" + enc(state.cluster) + (suffix || ""); }

function renderSummary(v) {
  const s = $("summary");
  s.replaceChildren();
  const cards = el("div", { class: "summary" });
  cards.append(
    el("div", { class: "card", id: "leader" }, el("b", {}, "leading controller"),
      v.leader ? `${v.leader.name} · epoch ${v.leader.epoch}` : "none"),
    el("div", { class: "card" }, el("b", {}, "standbys"), v.standbys.length ? v.standbys.join(", ") : "none seen"),
    el("div", { class: "card", id: "maintenance" }, el("b", {}, "maintenance"),
      v.maintenance ? el("span", { class: "badge on" }, "on: " + (v.maintenance.reason || "no reason")) : el("span", { class: "badge" }, "off"),
      state.readOnly ? null : el("button", {
        "data-action": v.maintenance ? "maintenance-off" : "maintenance-on",
        onclick: () => v.maintenance
          ? act("Exit maintenance mode?", "POST", clusterPath("?command=disableMaintenanceMode"))
          : act("Enter maintenance mode?", "POST", clusterPath("?command=enableMaintenanceMode"),
                JSON.stringify({ reason: window.prompt("Reason for maintenance", "operator") || "" })),
      }, v.maintenance ? "exit" : "enter")),
    el("div", { class: "card", id: "paused" }, el("b", {}, "pipeline"),
      v.paused ? el("span", { class: "badge on" }, "paused" + (v.paused.reason ? ": " + v.paused.reason : "")) : el("span", { class: "badge" }, "running")),
    el("div", { class: "card" }, el("b", {}, "store revision"), String(v.revision)),
  );
  s.append(cards);
}

function renderInstances(v) {
  const t = $("instances");
  t.replaceChildren(el("tr", {}, ["instance", "gossip", "generation", "RTT ms", "enabled", "zone", "tags", "replicas", "top states", ""].map((h) => el("th", {}, h))));
  for (const i of v.instances) {
    const g = i.gossip;
    const status = g ? g.status : (i.session ? "live" : "offline");
    t.append(el("tr", { "data-instance": i.name },
      el("td", {}, i.name),
      el("td", {}, el("span", { class: "badge " + status, "data-gossip": status }, status)),
      el("td", {}, g ? String(g.generation) : ""),
      el("td", {}, g && g.rtt_ms != null ? g.rtt_ms.toFixed(2) : ""),
      el("td", {}, el("span", { class: "badge " + (i.enabled ? "" : "disabled"), "data-enabled": String(i.enabled) }, i.enabled ? "yes" : "disabled")),
      el("td", {}, i.zone || ""),
      el("td", {}, i.tags.join(", ")),
      el("td", {}, String(i.replicas)),
      el("td", {}, String(i.top_states)),
      el("td", {}, state.readOnly ? null : el("button", {
        "data-action": i.enabled ? "disable" : "enable", "data-instance": i.name,
        onclick: () => act(`${i.enabled ? "Disable" : "Enable"} instance ${i.name}?`, "POST",
          clusterPath("/instances/" + enc(i.name) + "?command=" + (i.enabled ? "disable" : "enable"))),
      }, i.enabled ? "disable" : "enable")),
    ));
  }
}

function cellClass(r, c) {
  const s = c.current || c.external;
  let k = "cell";
  if (s === "ERROR") k += " ERROR";
  else if (s && s === r.top_state) k += " top";
  else if (s && (s === "OFFLINE" || s === "DROPPED")) k += " initial";
  else if (s) k += " second";
  if (c.differs) k += " differs";
  return k;
}

function cellAction(r, c, disabled) {
  if (state.readOnly) return undefined;
  const base = clusterPath("/instances/" + enc(c.instance));
  const body = JSON.stringify({ resource: r.name, partitions: [c.partition] });
  if ((c.current || c.external) === "ERROR")
    return () => act(`Reset ${c.partition} on ${c.instance} (ERROR: ${c.error || "no message"})?`, "POST", base + "?command=reset", body);
  if (disabled) return () => act(`Enable partition ${c.partition} on ${c.instance}?`, "POST", base + "?command=enablePartitions", body);
  return () => act(`Disable partition ${c.partition} on ${c.instance}?`, "POST", base + "?command=disablePartitions", body);
}

function renderResources(v) {
  const box = $("resources");
  box.replaceChildren();
  const disabled = new Set();
  for (const i of v.instances) for (const p of i.disabled_partitions) disabled.add(i.name + "|" + p);
  for (const r of v.resources) {
    const cells = new Map(r.cells.map((c) => [c.partition + "|" + c.instance, c]));
    const head = el("div", {},
      el("h3", {}, r.name, " ", el("span", { class: "muted" }, `${r.state_model} · ${r.partitions.length} partitions · ` +
        (r.differences ? `${r.differences} replicas differ from the ideal state` : "external view = ideal state")),
        r.enabled ? null : el("span", { class: "badge disabled" }, " disabled")),
      state.readOnly ? null : el("button", {
        "data-action": "rebalance", "data-resource": r.name,
        onclick: () => {
          const n = window.prompt(`Replicas for ${r.name}`, String(Math.max(1, ...r.partitions.map((p) => r.instances.filter((i) => cells.get(p + "|" + i) && cells.get(p + "|" + i).ideal).length))));
          if (n) act(`Rebalance ${r.name} with ${n} replicas?`, "POST", clusterPath("/resources/" + enc(r.name) + "?command=rebalance&replicas=" + enc(n)));
        },
      }, "rebalance"));
    const t = el("table", { class: "grid", "data-resource": r.name });
    t.append(el("tr", {}, el("th", {}, "partition"), r.instances.map((i) => el("th", {}, i))));
    for (const p of r.partitions) {
      const row = el("tr", {}, el("th", {}, p));
      for (const i of r.instances) {
        const c = cells.get(p + "|" + i);
        if (!c) { row.append(el("td", { class: "cell", "data-partition": p, "data-instance": i, "data-state": "" })); continue; }
        const shown = c.current || c.external || "";
        const isDisabled = disabled.has(i + "|" + r.name + "/" + p);
        row.append(el("td", {
          class: cellClass(r, c) + (isDisabled ? " disabled" : ""),
          "data-partition": p, "data-instance": i, "data-state": shown,
          title: `ideal ${c.ideal || "-"} · external ${c.external || "-"} · current ${c.current || "-"}` + (c.error ? ` · error: ${c.error}` : "") + (isDisabled ? " · partition disabled" : ""),
          onclick: cellAction(r, c, isDisabled),
        }, shown || "·",
          c.differs && c.ideal ? el("span", { class: "ideal" }, "→ " + c.ideal) : null,
          c.pending ? el("span", { class: "pending" }, c.pending) : null));
      }
      t.append(row);
    }
    box.append(head, t);
  }
  if (!v.resources.length) box.append(el("p", { class: "muted" }, "no resources"));
}

function renderStore(v) {
  const t = $("store");
  t.replaceChildren(el("tr", {}, ["replica", "address", "role", "term", "applied", "lag"].map((h) => el("th", {}, h))));
  for (const s of v.store) {
    t.append(el("tr", {}, el("td", {}, s.id == null ? "?" : String(s.id)), el("td", {}, s.addr),
      el("td", {}, el("span", { class: "badge " + (s.error ? "down" : "") }, s.role)),
      el("td", {}, s.term == null ? "" : String(s.term)), el("td", {}, s.applied == null ? "" : String(s.applied)),
      el("td", {}, s.lag == null ? (s.error || "") : String(s.lag))));
  }
}

function renderAlerts(v) {
  const t = $("alerts");
  const alerts = v.alerts || [];
  t.setAttribute("data-firing", String(alerts.length));
  t.replaceChildren(el("tr", {}, ["rule", "scope", "value", "since"].map((h) => el("th", {}, h))));
  for (const a of alerts) {
    t.append(el("tr", { class: "firing" }, el("td", {}, a.rule), el("td", {}, a.scope),
      el("td", {}, String(Math.round(a.value * 1e6) / 1e6)), el("td", {}, time(a.since_ms))));
  }
  if (!alerts.length) t.append(el("tr", {}, el("td", { class: "muted", colspan: "4" }, "none firing")));
}

function describe(e) {
  switch (e.kind) {
    case "liveInstance": return `${e.instance} ${e.action === "put" ? "registered a session" : "session ended"}`;
    case "leader": return e.action === "put" ? `controller ${e.instance} leads` : "leadership record removed";
    case "maintenance": return e.action === "put" ? `maintenance on (${e.detail || ""})` : "maintenance off";
    case "pause": return e.action === "put" ? "cluster paused" : "cluster resumed";
    case "message": {
      if (e.action === "put") {
        const what = `${e.resource || ""} ${e.detail || ""}`.trim();
        if (e.id) state.sent.set(e.id, what);
        return `transition sent to ${e.instance}: ${what}`;
      }
      const what = state.sent.get(e.id) || "";
      state.sent.delete(e.id);
      return `transition done on ${e.instance}${what ? ": " + what : ""}`;
    }
    case "instanceConfig": return `instance config of ${e.instance} changed`;
    case "idealState": return `ideal state of ${e.resource} ${e.action === "put" ? "written" : "removed"}`;
    case "action": return "operator: " + e.action;
    case "alert": return `alert ${e.action}: ${e.id} (${e.detail || ""})`;
    default:
      if (e.kind.startsWith("Member")) return `gossip: ${e.instance} ${e.kind.slice(6).toLowerCase()} (${e.detail})`;
      return null;
  }
}

function note(e) {
  const text = describe(e);
  if (!text) return;
  const list = $("timeline");
  list.prepend(el("li", { class: e.kind + " " + (e.action || "") }, time(e.at_ms) + "  " + text));
  while (list.children.length > 300) list.lastChild.remove();
}

function render() {
  const v = state.view;
  if (!v) return;
  renderSummary(v); renderAlerts(v); renderInstances(v); renderResources(v); renderStore(v);
  document.body.setAttribute("data-revision", String(v.revision));
}

async function refresh() {
  state.timer = null;
  if (!state.cluster) return;
  try {
    state.view = await api("GET", "/api/v1/clusters/" + enc(state.cluster) + "/view");
    render();
  } catch (e) {
    $("summary").replaceChildren(el("p", { class: "muted" }, "cannot read the cluster: " + e.message));
  }
}

function refreshSoon() { if (!state.timer) state.timer = setTimeout(refresh, 100); }

function connect() {
  if (state.source) state.source.close();
  const src = new EventSource(clusterPath("/events"));
  src.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn live"; refreshSoon(); };
  src.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn"; };
  src.onmessage = (m) => {
    try { note(JSON.parse(m.data)); } catch (_) { /* keep going */ }
    refreshSoon();
  };
  state.source = src;
}

async function start() {
  try { state.readOnly = (await api("GET", "/api/v1/server")).readOnly; } catch (_) { state.readOnly = true; }
  document.body.setAttribute("data-read-only", String(state.readOnly));
  const { clusters } = await api("GET", "/admin/v2/clusters");
  const wanted = decodeURIComponent(location.hash.slice(1));
  state.cluster = clusters.includes(wanted) ? wanted : clusters[0] || null;
  $("clusters").replaceChildren(...clusters.map((c) =>
    el("a", { href: "#" + enc(c), class: c === state.cluster ? "current" : "" }, c)));
  if (!state.cluster) { $("summary").textContent = "no clusters"; return; }
  connect();
  await refresh();
  setInterval(refresh, 5000); // a safety net; changes arrive as events
}

window.addEventListener("hashchange", () => location.reload());
start().catch((e) => { $("summary").textContent = "error: " + e.message; });
