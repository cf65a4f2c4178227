// Live updates for the result lists and a private test's page: new results arrive as
// server-sent events (from /events, or the stream `data-events` names) and are drawn at the
// top of the table. Message-derived text is only ever set with textContent.
"use strict";

(function () {
  const live = document.getElementById("live");
  if (!live || typeof EventSource === "undefined") {
    return;
  }
  const tbody = live.querySelector("table.results tbody");
  const params = new URLSearchParams();
  // A private test's page names its own stream, which takes only `after`.
  const events = live.dataset.events || "/events";
  if (!live.dataset.events) {
    params.set("mailbox", live.dataset.mailbox || "");
  }
  if (live.dataset.sender) {
    params.set("sender", live.dataset.sender);
  }
  if (live.dataset.after) {
    params.set("after", live.dataset.after);
  }

  const VERDICT_CLASSES = ["ok", "partial", "problem", "unknown"];

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    td.textContent = text;
    return td;
  }

  function linkCell(text, href, tdClass, linkClass) {
    const td = document.createElement("td");
    td.className = tdClass;
    const a = document.createElement("a");
    a.href = href;
    if (linkClass) {
      a.className = linkClass;
    }
    a.textContent = text;
    td.appendChild(a);
    return td;
  }

  function addRow(row) {
    if (!/^[0-9a-f]+$/.test(row.id) || tbody.querySelector('tr[data-id="' + row.id + '"]')) {
      return;
    }
    const href = "/r/" + row.id;
    const verdictClass = VERDICT_CLASSES.includes(row.verdict_class) ? row.verdict_class : "unknown";
    const tr = document.createElement("tr");
    tr.dataset.id = row.id;
    tr.className = "new";
    tr.appendChild(linkCell(row.time, href, "time", ""));
    tr.appendChild(cell(row.mail_from, "mono"));
    tr.appendChild(cell(row.header_from, "mono"));
    tr.appendChild(linkCell(row.prefixed_subject, href, "subject", "verdict " + verdictClass));
    tbody.insertBefore(tr, tbody.firstChild);
    live.querySelectorAll("p.empty").forEach(function (empty) {
      empty.remove();
    });
  }

  const source = new EventSource(events + "?" + params.toString());
  source.addEventListener("result", function (event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (data && data.row) {
      addRow(data.row);
    }
  });
})();
