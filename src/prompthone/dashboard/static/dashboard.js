// prompthone dashboard: draws the plots, follows running runs (fetching the JSON API, no reload), runs-page controls.
// Text from the store is only ever set with textContent: never parsed as HTML.
(function () {
  "use strict";
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const body = document.body;
  const refreshMs = Number(body.dataset.refreshMs) || 2000;

  function readJson(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const fmt = {
    score: (v) => (typeof v === "number" ? v.toFixed(3) : "—"),
    num: (v) => (typeof v === "number" ? v.toLocaleString("en-US") : "—"),
    when: (v) => (v ? String(v).replace("T", " ").slice(0, 19) : "—"),
  };

  function get(obj, path) {
    return path.split(".").reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
  }

  function statusBadge(status) {
    return el("span", { class: "status status-" + status, "data-status": true },
      status === "running" ? el("span", { class: "live-dot", "aria-hidden": "true" }) : null, status);
  }

  function deltaNode(a, b) {
    if (typeof a !== "number" || typeof b !== "number") return document.createTextNode("not scored yet");
    const d = a - b;
    const text = (d >= 0 ? "+" : "") + d.toFixed(3);
    const cls = text === "+0.000" || text === "-0.000" ? "flat" : d > 0 ? "up" : "down";
    return el("span", { class: "delta " + cls }, text);
  }

  function candLink(runId, id) {
    if (id === null || id === undefined) return el("span", { class: "muted" }, "—");
    return el("a", { class: "mono", href: "/runs/" + encodeURIComponent(runId) + "/candidates/" + id }, "#" + id);
  }

  function drawFigure(div, figure) {
    if (!div || !figure || typeof Plotly === "undefined") return;
    div.hidden = false;
    Plotly.react(div, figure.data, figure.layout, PLOT_CONFIG);
  }

  // -- run page -------------------------------------------------------------------------------------------------

  function candidateRows(view) {
    const runId = view.run.id;
    const head = el("tr", {}, el("th", { class: "num" }, "id"), el("th", {}, "origin"),
      el("th", { class: "num" }, "parent"), el("th", { class: "num" }, "step"),
      view.score_keys.map((k) => el("th", { class: "num" }, k)), el("th", {}, "prompt"));
    const rows = view.candidates.map((c) => {
      const badge = c.is_best ? el("span", { class: "badge badge-best" }, "best")
        : c.is_seed ? el("span", { class: "badge badge-seed" }, "seed") : null;
      const parents = c.parents.length
        ? c.parents.flatMap((p, i) => (i ? [", ", candLink(runId, p)] : [candLink(runId, p)]))
        : [el("span", { class: "muted" }, "—")];
      const preview = el("td", { class: "preview" }, c.preview || "(empty instruction)",
        c.system ? el("span", { class: "sys" }, "system: " + c.system) : null,
        c.demos ? el("span", { class: "sys" }, c.demos + (c.demos === 1 ? " demo" : " demos")) : null);
      return el("tr", { "data-cand-id": c.id, class: c.is_best ? "is-best" : c.is_seed ? "is-seed" : null },
        el("td", { class: "num" }, candLink(runId, c.id), badge ? " " : null, badge),
        el("td", {}, c.origin), el("td", { class: "num" }, parents), el("td", { class: "num" }, c.step),
        view.score_keys.map((k) => el("td", { class: "num" }, fmt.score(c.scores[k]))), preview);
    });
    return [head, rows];
  }

  function updateRun(view, previous) {
    const run = view.run;
    document.querySelectorAll("[data-field]").forEach((node) => {
      const value = get(run, node.dataset.field);
      const kind = node.dataset.format;
      if (kind === "delta") node.replaceChildren(deltaNode(value, get(run, node.dataset.minus)));
      else if (kind === "cand") node.replaceChildren(candLink(run.id, value));
      else node.textContent = (fmt[kind] || String)(value);
    });
    document.getElementById("run-status").replaceChildren(statusBadge(run.status));
    document.getElementById("run-when").textContent =
      (run.finished_at ? "ended " + fmt.when(run.finished_at) : "last update " + fmt.when(run.updated_at)) + " UTC";
    const changed = (key) => JSON.stringify(view[key]) !== JSON.stringify(previous[key]);
    if (changed("candidates") || changed("score_keys")) {
      const [head, rows] = candidateRows(view);
      const table = document.getElementById("candidates-table");
      table.tHead.replaceChildren(head);
      table.tBodies[0].replaceChildren(...rows);
      document.getElementById("candidates-count").textContent = view.candidates.length +
        " · click an id for its prompt, ancestry and per-example wins and losses";
    }
    if (changed("figure") && view.figure) {
      const empty = document.getElementById("scores-empty");
      if (empty) empty.remove();
      drawFigure(document.getElementById("scores-plot"), view.figure);
    }
  }

  function followRun(initial) {
    let view = initial;
    const url = "/api/runs/" + encodeURIComponent(view.run.id);
    const stamp = document.getElementById("refreshed");
    body.dataset.live = "on";
    body.dataset.refreshes = "0";

    function stop() {
      body.dataset.live = "off";
      const banner = document.getElementById("live-banner");
      if (banner) {
        banner.className = "banner done";
        banner.replaceChildren(el("span", {}, "This run has ended (", el("b", {}, view.run.status),
          "): the page shows its final state and stopped following it."));
      }
    }

    async function tick() {
      try {
        const response = await fetch(url, { cache: "no-store", headers: { accept: "application/json" } });
        const next = await response.json();
        if (!response.ok) throw new Error(next.error || response.statusText);
        updateRun(next, view);
        view = next;
        body.dataset.refreshes = String(Number(body.dataset.refreshes) + 1);
        if (stamp) stamp.textContent = "(last refresh " + new Date().toLocaleTimeString() + ")";
      } catch (err) {
        if (stamp) stamp.textContent = "(refresh failed: " + err.message + "; retrying)";
      }
      if (view.run.status === "running") setTimeout(tick, refreshMs);
      else stop();
    }
    setTimeout(tick, refreshMs);
  }

  function runPage() {
    const view = readJson("run-data");
    drawFigure(view.figure ? document.getElementById("scores-plot") : null, view.figure);
    if (view.run.status === "running") followRun(view);
    else body.dataset.live = "off";
  }

  // -- runs page ------------------------------------------------------------------------------------------------

  function runsPage() {
    const filters = document.getElementById("filters");
    document.querySelectorAll("select[data-autosubmit]").forEach((s) => s.addEventListener("change", () => filters.submit()));
    const form = document.getElementById("compare-form");
    if (form) {
      const button = document.getElementById("compare-button");
      const hint = document.getElementById("compare-hint");
      const sync = () => {
        const n = form.querySelectorAll("input[name=run]:checked").length;
        button.disabled = n < 2;
        hint.textContent = n < 2 ? "tick two or more runs to compare them" : n + " runs selected";
      };
      form.addEventListener("change", sync);
      sync();
    }
    const running = () => document.querySelectorAll("#runs [data-cell=status] .status-running").length > 0;
    if (!running()) { body.dataset.live = "off"; return; }
    body.dataset.live = "on";
    async function tick() {
      try {
        const response = await fetch("/api/runs" + location.search, { cache: "no-store" });
        if (response.ok) {
          const data = await response.json();
          for (const r of data.runs) {
            const row = document.querySelector("#runs tr[data-run-id=\"" + CSS.escape(r.id) + "\"]");
            if (!row) continue;
            row.querySelector("[data-cell=status]").replaceChildren(statusBadge(r.status));
            row.querySelector("[data-cell=best_dev]").textContent = fmt.score(r.best_dev);
            row.querySelector("[data-cell=test]").textContent = fmt.score(r.test);
          }
        }
      } catch (err) { /* the next tick tries again */ }
      if (running()) setTimeout(tick, refreshMs);
      else body.dataset.live = "off";
    }
    setTimeout(tick, refreshMs);
  }

  // -- compare page ---------------------------------------------------------------------------------------------

  function comparePage() {
    drawFigure(document.getElementById("compare-plot"), readJson("compare-figure"));
  }

  const pages = { run: runPage, runs: runsPage, compare: comparePage };
  (pages[body.dataset.page] || (() => {}))();
})();
