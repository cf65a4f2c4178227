// Live updates for the session log: each new session arrives as a server-sent event holding
// its entry as the server draws it for the page (escaped there, like the page itself), and is
// put at the top of the list.
"use strict";

(function () {
  const section = document.getElementById("sessions");
  if (!section || !section.dataset.live || typeof EventSource === "undefined") {
    return;
  }
  const list = section.querySelector(".session-list");
  const params = new URLSearchParams();
  for (const name of ["after", "client", "sender", "code", "direction"]) {
    if (section.dataset[name]) {
      params.set(name, section.dataset[name]);
    }
  }

  function addSession(data) {
    if (!/^[0-9a-f]+$/.test(data.id) || document.getElementById("s-" + data.id)) {
      return;
    }
    const template = document.createElement("template");
    template.innerHTML = data.html;
    const entry = template.content.firstElementChild;
    if (!entry || entry.id !== "s-" + data.id) {
      return;
    }
    entry.classList.add("new");
    list.insertBefore(entry, list.firstChild);
    const empty = section.querySelector("p.empty");
    if (empty) {
      empty.remove();
    }
  }

  const source = new EventSource("/logs/events?" + params.toString());
  source.addEventListener("session", function (event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (data && typeof data.id === "string" && typeof data.html === "string") {
      addSession(data);
    }
  });
})();
