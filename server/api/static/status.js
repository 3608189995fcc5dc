// swarmboot status page: follows /status/events (server-sent events) and updates the page in place.
// The server sends only what changed on the page shown (rows as arrays, in COLUMNS order).
(function () {
  "use strict";
  var COLS = ["name", "group", "state", "stage", "status", "progress", "image", "version", "installed",
              "last_seen", "message"];
  var $ = function (id) { return document.getElementById(id); };
  var tbody = $("rows"), live = $("live");
  var skew = 0;            // browser clock minus server clock, seconds
  var total = 0, source = null, openNode = "", timelineTimer = null;

  function filters() {
    return { group: $("f-group").value, state: $("f-state").value, q: $("f-q").value.trim(),
             limit: $("f-limit").value, offset: $("f-offset").value };
  }
  function query(extra) {
    var f = filters(), p = new URLSearchParams();
    Object.keys(f).forEach(function (k) { if (f[k] !== "" && !(k === "offset" && f[k] === "0")) p.set(k, f[k]); });
    if (extra) Object.keys(extra).forEach(function (k) { if (extra[k]) p.set(k, extra[k]); });
    return p.toString();
  }
  function text(v) { return v === null || v === undefined || v === "" ? "–" : String(v); }
  function ago(t) {
    if (t === null || t === undefined || t === "") return "never";
    var s = Math.max(0, Date.now() / 1000 - skew - t);
    if (s < 120) return Math.round(s) + " s ago";
    if (s < 7200) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }
  function cell(tr, value, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = value;
    tr.appendChild(td);
    return td;
  }
  function rowOf(a) {
    var r = {};
    COLS.forEach(function (c, i) { r[c] = a[i]; });
    var tr = document.createElement("tr");
    tr.dataset.name = r.name;
    tr.dataset.state = r.state;
    cell(tr, r.name, "name");
    cell(tr, r.group);
    var badge = document.createElement("span");
    badge.className = "badge state-" + r.state;
    badge.textContent = r.state;
    cell(tr, "").appendChild(badge);
    cell(tr, (r.stage + " " + r.status).trim() || "–");
    var dl = cell(tr, r.progress === null ? "–" : Math.round(r.progress * 100) + " %", "num");
    if (r.progress !== null) {
      dl.style.background = "linear-gradient(90deg, var(--bar) " + (r.progress * 100).toFixed(1) +
        "%, transparent 0)";
    }
    cell(tr, r.image ? r.image + ":" + r.version : "–");
    cell(tr, text(r.installed));
    var seen = cell(tr, ago(r.last_seen), "seen");
    seen.dataset.t = r.last_seen === null ? "" : r.last_seen;
    cell(tr, r.message || "", "msg");
    if (r.name === openNode) tr.classList.add("open");
    return tr;
  }
  function setRange() {
    var f = filters(), off = +f.offset, lim = +f.limit;
    $("range").textContent = total ? (off + 1) + "–" + Math.min(off + lim, total) + " of " + total : "no nodes";
    $("prev").disabled = off <= 0;
    $("next").disabled = off + lim >= total;
  }
  function onView(msg) {
    skew = Date.now() / 1000 - msg.now;
    total = msg.total;
    $("f-offset").value = msg.offset;
    var frag = document.createDocumentFragment();
    msg.rows.forEach(function (a) {
      var tr = rowOf(a);
      if (a[0] === openNode && !inPage(a)) return;  // the open node off this page: timeline only
      frag.appendChild(tr);
    });
    tbody.replaceChildren(frag);
    setRange();
    msg.rows.forEach(function (a) { if (a[0] === openNode) refreshTimeline(); });
  }
  function inPage(a) {
    var f = filters();
    return (!f.group || a[1] === f.group) && (!f.state || a[2] === f.state) && (!f.q || a[0].indexOf(f.q) >= 0);
  }
  function onRows(msg) {
    skew = Date.now() / 1000 - msg.now;
    total = msg.total;
    msg.rows.forEach(function (a) {
      var old = tbody.querySelector('tr[data-name="' + CSS.escape(a[0]) + '"]');
      if (old) old.replaceWith(rowOf(a));
      if (a[0] === openNode) refreshTimeline();
    });
    setRange();
  }
  function onSummary(s) {
    var all = 0;
    Object.keys(s.counts).forEach(function (k) {
      var el = $("count-" + k);
      if (el) el.textContent = s.counts[k];
      all += s.counts[k];
    });
    $("count-all").textContent = all;
    var sel = $("f-group"), have = {};
    Array.prototype.forEach.call(sel.options, function (o) { have[o.value] = true; });
    Object.keys(s.groups).sort().forEach(function (g) {
      if (!have[g]) { var o = document.createElement("option"); o.value = g; o.textContent = g; sel.appendChild(o); }
    });
    var body = $("swarm-body");
    body.replaceChildren();
    if (!s.swarm.length) { var q = document.createElement("p"); q.className = "quiet"; q.textContent = "no image served yet"; body.appendChild(q); }
    s.swarm.forEach(function (w) {
      var p = document.createElement("p");
      p.textContent = w.image + ":" + w.version + " — " + w.seeders + " seeders, " + w.leechers +
        " leechers, " + w.completed + " completed";
      body.appendChild(p);
      var d = document.createElement("p");
      d.className = "quiet";
      d.textContent = "this server sent " + mib(w.seeder_sent) + " (seeder) + " + mib(w.web_seed_sent) + " (web seed)";
      body.appendChild(d);
      if (w.nodes_from_peers !== undefined) {
        var n = document.createElement("p");
        n.className = "quiet";
        n.textContent = "nodes report " + mib(w.nodes_from_peers) + " from peers, " + mib(w.nodes_from_web_seeds) + " from web seeds";
        body.appendChild(n);
      }
    });
  }
  function mib(b) { return (b / 1048576).toFixed(1) + " MiB"; }

  function connect() {
    if (source) source.close();
    source = new EventSource("/status/events?" + query({ node: openNode }));
    source.addEventListener("open", function () { live.textContent = "live"; live.className = "live on"; });
    source.addEventListener("error", function () { live.textContent = "reconnecting…"; live.className = "live off"; });
    source.addEventListener("view", function (e) { onView(JSON.parse(e.data)); });
    source.addEventListener("rows", function (e) { onRows(JSON.parse(e.data)); });
    source.addEventListener("summary", function (e) { onSummary(JSON.parse(e.data)); });
  }
  function changed(resetOffset) {
    if (resetOffset) $("f-offset").value = 0;
    history.replaceState(null, "", "/status" + (query() ? "?" + query() : ""));
    document.querySelectorAll("#counts .count").forEach(function (a) {
      a.classList.toggle("selected", a.dataset.state === $("f-state").value);
    });
    connect();
  }

  // -- the timeline of one node ------------------------------------------------------------------
  function refreshTimeline() {
    if (!openNode || timelineTimer) return;
    timelineTimer = setTimeout(function () { timelineTimer = null; loadTimeline(); }, 300);
  }
  function loadTimeline() {
    var name = openNode;
    fetch("/status/api/nodes/" + encodeURIComponent(name), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (n) {
        if (name !== openNode || n.error) return;
        $("tl-name").textContent = n.name;
        $("tl-state").textContent = n.state + (n.address ? " · " + n.address : "") +
          (n.image ? " · " + n.image + ":" + n.version : "") + (n.message ? " · " + n.message : "");
        var ol = $("tl-events");
        ol.replaceChildren();
        n.timeline.forEach(function (e) {
          var li = document.createElement("li");
          li.className = "ev-" + e.status;
          var t = new Date(e.time);
          li.textContent = t.toLocaleTimeString() + "  " + e.stage + " " + e.status +
            (e.duration !== null ? " (" + e.duration.toFixed(1) + " s)" : "") + (e.message ? " — " + e.message : "");
          ol.appendChild(li);
        });
        $("timeline").hidden = false;
      });
  }
  tbody.addEventListener("click", function (e) {
    var tr = e.target.closest("tr");
    if (!tr) return;
    openNode = tr.dataset.name;
    tbody.querySelectorAll("tr.open").forEach(function (o) { o.classList.remove("open"); });
    tr.classList.add("open");
    loadTimeline();
    connect();
  });
  $("tl-close").addEventListener("click", function () {
    openNode = ""; $("timeline").hidden = true;
    tbody.querySelectorAll("tr.open").forEach(function (o) { o.classList.remove("open"); });
    connect();
  });

  // -- filters, paging ---------------------------------------------------------------------------
  ["f-group", "f-state", "f-limit"].forEach(function (id) { $(id).addEventListener("change", function () { changed(true); }); });
  var typing = null;
  $("f-q").addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(function () { changed(true); }, 250); });
  $("filters").addEventListener("submit", function (e) { e.preventDefault(); changed(true); });
  $("prev").addEventListener("click", function () {
    $("f-offset").value = Math.max(0, +$("f-offset").value - +$("f-limit").value); changed(false);
  });
  $("next").addEventListener("click", function () {
    $("f-offset").value = +$("f-offset").value + +$("f-limit").value; changed(false);
  });
  document.querySelectorAll("#counts .count").forEach(function (a) {
    a.addEventListener("click", function (e) { e.preventDefault(); $("f-state").value = a.dataset.state; changed(true); });
  });
  setInterval(function () {
    tbody.querySelectorAll("td.seen").forEach(function (td) { td.textContent = ago(td.dataset.t === "" ? null : +td.dataset.t); });
  }, 1000);
  connect();
})();
