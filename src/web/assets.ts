// The console's only script and stylesheet, served as static routes so the CSP can forbid every
// inline script. Log text and job fields are put on the page with textContent, never as HTML.
export const APP_CSS = `
body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#111;background:#fafafa}
main{padding:12px;max-width:1100px;margin:auto}
h1{font-size:1.4em;word-break:break-all}
nav{display:flex;gap:12px;align-items:center;padding:8px 12px;background:#1b2430;flex-wrap:wrap}
nav a{color:#fff}.who{color:#bbb;margin-left:auto}
button.link{background:none;border:0;color:#9cf;cursor:pointer;text-decoration:underline}
table{border-collapse:collapse;width:100%}td,th{padding:4px 6px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.inline{display:inline}.muted{color:#666}.err{color:#b00}
pre{white-space:pre-wrap;word-break:break-word;background:#111;color:#eee;padding:8px;max-height:60vh;overflow:auto}
.risk-WRITE,.risk-ADMIN{color:#b35c00;font-weight:bold}.status{font-weight:bold}
.actions{display:flex;gap:8px;flex-wrap:wrap;margin:8px 0}
form.filters{display:flex;gap:6px;flex-wrap:wrap;margin-bottom:8px}
.step{border:1px solid #ddd;padding:6px;margin:6px 0;background:#fff}
.chart{background:#fff;border:1px solid #ddd;max-width:100%}
td.id{font:12px monospace;min-width:12ch;word-break:break-all}
@media (max-width:640px){table.scroll{display:block;overflow-x:auto}}
td{overflow-wrap:anywhere}td.status{overflow-wrap:normal}
@media (max-width:640px){.wide{display:none}}
`;

export const APP_JS = `"use strict";
(function () {
  var body = document.body;
  var kind = body.getAttribute("data-page");
  function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }

  if (kind === "link") {
    // The one-time code travels in the URL fragment (never sent to a server); move it into the form.
    var code = location.hash.slice(1);
    var input = document.getElementById("code");
    if (input && code) input.value = code;
    history.replaceState(null, "", location.pathname);
  }

  if (kind === "jobs") {
    var tbody = document.getElementById("jobs-body");
    var src = body.getAttribute("data-poll");
    if (tbody && src) setInterval(function () {
      fetch(src, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
        if (!data) return;
        var rows = [];
        data.jobs.forEach(function (j) {
          var tr = el("tr"); tr.setAttribute("data-job", j.id);
          var a = el("a", j.id); a.href = "/web/jobs/" + encodeURIComponent(j.id);
          var td = el("td", undefined, "id"); td.appendChild(a); tr.appendChild(td);
          tr.appendChild(el("td", j.status, "status"));
          tr.appendChild(el("td", j.risk || "—", "wide risk-" + (j.risk || "")));
          tr.appendChild(el("td", j.projectId, "wide"));
          tr.appendChild(el("td", j.intent));
          tr.appendChild(el("td", j.createdAt, "wide"));
          rows.push(tr);
        });
        tbody.replaceChildren.apply(tbody, rows);
      }).catch(function () {});
    }, 3000);
  }

  if (kind === "job") {
    var id = body.getAttribute("data-job");
    var status = body.getAttribute("data-status");
    var pre = document.getElementById("log");
    var search = document.getElementById("log-search");
    var follow = document.getElementById("log-follow");
    var pause = document.getElementById("log-pause");
    var state = document.getElementById("log-state");
    var text = "", paused = false, pending = "";
    function render() {
      var q = search && search.value;
      pre.textContent = q ? text.split("\\n").filter(function (l) { return l.indexOf(q) !== -1; }).join("\\n") : text;
      if (follow && follow.checked) pre.scrollTop = pre.scrollHeight;
    }
    if (pre && id) {
      var es = new EventSource("/web/jobs/" + encodeURIComponent(id) + "/logs/stream");
      es.addEventListener("log", function (e) {
        if (paused) { pending += e.data; return; }
        text += e.data; render();
      });
      es.addEventListener("end", function () { es.close(); if (state) state.textContent = "log complete"; });
      es.onerror = function () { if (state) state.textContent = "log stream interrupted"; };
      if (search) search.addEventListener("input", render);
      if (pause) pause.addEventListener("click", function () {
        paused = !paused; pause.textContent = paused ? "Resume" : "Pause";
        if (!paused) { text += pending; pending = ""; render(); }
      });
    }
    // The page reflects the job's state: it reloads the moment the job moves on (a wait the
    // server answers at the change, asked again after it times out; slower after an error, or
    // while the log is paused).
    function watch() {
      fetch("/web/jobs/" + encodeURIComponent(id) + ".json?while=" + encodeURIComponent(status), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) {
          if (!j) return setTimeout(watch, 3000);
          if (j.status === status) return watch();
          if (!paused) return location.reload();
          setTimeout(watch, 1000);
        })
        .catch(function () { setTimeout(watch, 3000); });
    }
    // A final job's page has nothing more to wait for.
    if (id && status && ["SUCCEEDED", "FAILED", "CANCELLED"].indexOf(status) === -1) watch();
  }
})();
`;
