//! The status page served at `GET /`: one self-contained HTML document
//! (inline CSS and JavaScript, no external resources, no build step) that
//! fetches `status` every second and draws the members with their state
//! and weight, the link graph as SVG with each link's RTT, the roster
//! epoch, the routes and the recent notable events.
//!
//! Every string from the node (cluster names come from the roster, reasons
//! from peers) reaches the page through `textContent`/`createTextNode`,
//! never as markup, and the Content-Security-Policy forbids loading
//! anything from elsewhere.

use axum::http::header;
use axum::response::IntoResponse;

/// The page's Content-Security-Policy: only its own inline script and
/// style, and requests back to the node.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Serves [`STATUS_PAGE`].
pub async fn get_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STATUS_PAGE,
    )
}

/// The HTML of the status page.
pub const STATUS_PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedmesh status</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --mute:#6b7385; --line:#d9dde5;
          --alive:#2e9d5b; --suspect:#d89614; --dead:#c8413b; --left:#8a8f9c; --self:#2d5fd3; }
  * { box-sizing:border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
         background:var(--bg); color:var(--ink); }
  header { display:flex; flex-wrap:wrap; gap:.4em 1.6em; align-items:baseline;
           padding:12px 20px; background:var(--ink); color:#fff; }
  header h1 { font-size:18px; margin:0; }
  header .meta { color:#c9cfdb; }
  #conn.ok { color:#7ee2a4; } #conn.err { color:#ff9a94; }
  main { display:grid; grid-template-columns:minmax(0,1fr) minmax(0,1fr); gap:16px; padding:16px 20px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 14px; }
  section.wide { grid-column:1 / -1; }
  h2 { font-size:14px; margin:0 0 8px; text-transform:uppercase; letter-spacing:.05em; color:var(--mute); }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:3px 8px 3px 0; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { font-weight:600; color:var(--mute); font-size:12px; }
  td.num, th.num { text-align:right; }
  td.path { white-space:normal; }
  code { font:12px ui-monospace, monospace; color:var(--mute); }
  .state { display:inline-block; padding:0 6px; border-radius:3px; color:#fff; font-size:12px; }
  .state.alive { background:var(--alive); } .state.suspect { background:var(--suspect); }
  .state.dead { background:var(--dead); } .state.left { background:var(--left); }
  .kind { display:inline-block; min-width:5.5em; font-size:12px; color:var(--mute); }
  .kind.evidence { color:var(--dead); font-weight:600; } .kind.decision { color:var(--self); font-weight:600; }
  svg { width:100%; height:auto; display:block; }
  .topo-edge line { stroke:#9aa3b5; stroke-width:2; }
  .topo-edge text { font-size:11px; fill:var(--ink); paint-order:stroke; stroke:#fff; stroke-width:3px; }
  .topo-node circle { stroke:#fff; stroke-width:2; }
  .topo-node.self circle { stroke:var(--self); stroke-width:4; }
  .topo-node text { font-size:12px; fill:var(--ink); text-anchor:middle; }
  .empty { color:var(--mute); font-style:italic; }
  @media (max-width:900px) { main { grid-template-columns:1fr; } }
</style>
</head>
<body>
<header>
  <h1>fedmesh <span id="node-name"></span></h1>
  <span class="meta" id="node-meta"></span>
  <span class="meta" id="roster-epoch"></span>
  <span id="conn">loading…</span>
</header>
<main>
  <section><h2>Members</h2><div id="members"></div></section>
  <section><h2>Topology</h2><div id="topology"></div></section>
  <section><h2>Routes</h2><div id="routes"></div></section>
  <section><h2>Recent decisions &amp; evidence</h2><div id="recent"></div></section>
</main>
<script>
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";
// Builds an element; children that are not nodes become text nodes, so
// nothing from the node is ever parsed as markup.
function build(el, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const kid of kids) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}
const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
const s = (tag, attrs, ...kids) => build(document.createElementNS(SVG_NS, tag), attrs, kids);
const short = (id) => String(id).slice(0, 8);
const ms = (v) => (typeof v === "number" && isFinite(v) && v >= 0) ? v.toFixed(1) + " ms" : "-";
const STATE_COLOURS = { alive: "#2e9d5b", suspect: "#d89614", dead: "#c8413b", left: "#8a8f9c" };

function table(headers, rows) {
  if (rows.length === 0) return h("p", { class: "empty" }, "none");
  const head = h("tr", {}, ...headers.map(([t, c]) => h("th", c ? { class: c } : {}, t)));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, ...rows));
}

function names(st) {
  const m = new Map();
  for (const x of (st.roster && st.roster.members) || []) m.set(x.id, x.name);
  for (const x of st.members || []) if (x.name && !m.has(x.id)) m.set(x.id, x.name);
  return (id) => m.get(id) || short(id);
}

function renderMembers(st, name) {
  const members = [...(st.members || [])].sort((x, y) => name(x.id).localeCompare(name(y.id)));
  const rows = members.map((m) => h("tr", { class: "member", "data-id": m.id },
    h("td", {}, name(m.id)), h("td", {}, h("code", {}, short(m.id))),
    h("td", {}, h("span", { class: "state " + m.state }, m.state)),
    h("td", { class: "num" }, m.weight), h("td", { class: "num" }, ms(m.rtt_ms)),
    h("td", {}, m.addr || "-")));
  return table([["name"], ["id"], ["state"], ["weight", "num"], ["rtt", "num"], ["address"]], rows);
}

function renderTopology(st, name) {
  const state = new Map((st.members || []).map((m) => [m.id, m.state]));
  const ids = new Set();
  for (const m of (st.roster && st.roster.members) || []) ids.add(m.id);
  for (const m of st.members || []) ids.add(m.id);
  for (const e of st.graph || []) { ids.add(e.a); ids.add(e.b); }
  // A deterministic circle: sorted by name, then id.
  const nodes = [...ids].sort((x, y) => name(x).localeCompare(name(y)) || x.localeCompare(y));
  const W = 560, H = 420, cx = W / 2, cy = H / 2, R = Math.min(W, H) / 2 - 50;
  const pos = new Map(nodes.map((id, i) => {
    if (nodes.length === 1) return [id, [cx, cy]];
    const a = -Math.PI / 2 + 2 * Math.PI * i / nodes.length;
    return [id, [cx + R * Math.cos(a), cy + R * Math.sin(a)]];
  }));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", id: "topology-svg",
    "aria-label": `link graph: ${nodes.length} clusters, ${(st.graph || []).length} links` });
  for (const e of st.graph || []) {
    const [x1, y1] = pos.get(e.a), [x2, y2] = pos.get(e.b);
    svg.append(s("g", { class: "topo-edge" },
      s("title", {}, `${name(e.a)} – ${name(e.b)}: cost ${e.cost_us} µs`),
      s("line", { x1, y1, x2, y2 }),
      s("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, ms(e.cost_us / 1000))));
  }
  for (const id of nodes) {
    const [x, y] = pos.get(id);
    const st8 = state.get(id) || "unknown";
    svg.append(s("g", { class: "topo-node" + (id === st.node.id ? " self" : ""), "data-id": id },
      s("title", {}, `${name(id)} ${short(id)} (${st8})`),
      s("circle", { cx: x, cy: y, r: 16, fill: STATE_COLOURS[st8] || "#b0b6c3" }),
      s("text", { x, y: y + 32 }, name(id))));
  }
  return svg;
}

function renderRoutes(st, name) {
  const routes = [...(st.routes || [])].sort((x, y) => name(x.dst).localeCompare(name(y.dst)));
  const rows = routes.map((r) => h("tr", {},
    h("td", {}, name(r.dst)), h("td", {}, name(r.next_hop)),
    h("td", { class: "num" }, Math.max(0, (r.path || []).length - 1)),
    h("td", { class: "num" }, ms(r.cost_us / 1000)),
    h("td", { class: "path" }, (r.path || []).map(name).join(" → "))));
  return table([["destination"], ["next hop"], ["hops", "num"], ["cost", "num"], ["path"]], rows);
}

function renderRecent(st) {
  const rows = [...(st.recent || [])].reverse().map((e) => h("tr", { class: "recent" },
    h("td", {}, new Date(e.unix_ms).toLocaleTimeString()),
    h("td", {}, h("span", { class: "kind " + e.kind }, e.kind)),
    h("td", { class: "path" }, e.summary)));
  return table([["time"], ["kind"], ["event"]], rows);
}

function render(st) {
  const name = names(st);
  const n = st.node;
  document.getElementById("node-name").textContent = n.name || short(n.id);
  document.title = "fedmesh " + (n.name || short(n.id));
  document.getElementById("node-meta").textContent =
    `${short(n.id)} · network ${n.network} · listen ${n.listen} · incarnation ${n.incarnation} · up ${n.uptime_s}s`;
  const r = st.roster || {};
  let epoch = `roster epoch ${r.epoch ?? "?"} · total weight ${r.total_weight ?? "?"}`;
  if (r.pending) epoch += ` · change to epoch ${r.pending.epoch} pending (${r.pending.voted}/${r.pending.total} voted)`;
  document.getElementById("roster-epoch").textContent = epoch;
  document.getElementById("members").replaceChildren(renderMembers(st, name));
  document.getElementById("topology").replaceChildren(renderTopology(st, name));
  document.getElementById("routes").replaceChildren(renderRoutes(st, name));
  document.getElementById("recent").replaceChildren(renderRecent(st));
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
}

async function refresh() {
  const conn = document.getElementById("conn");
  try {
    const res = await fetch("status", { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    render(await res.json());
    conn.className = "ok";
    conn.textContent = "live · " + new Date().toLocaleTimeString();
  } catch (e) {
    conn.className = "err";
    conn.textContent = "cannot reach the node: " + e.message;
  } finally {
    setTimeout(refresh, 1000);
  }
}
refresh();
</script>
</body>
</html>
"##;
