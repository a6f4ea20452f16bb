// The email template editor's live preview: a moment after typing stops, the form is sent to
// the preview endpoint (which writes nothing) and the rendered parts, or every problem with
// its line and column, are shown beside it. The body goes into a sandboxed frame only. A call
// the server did not answer (a network error, a 5xx, a 429) is tried again by itself.
(function () {
  "use strict";
  var form = document.getElementById("template-form");
  if (!form) return;
  var url = form.getAttribute("data-preview-url");
  var status = document.getElementById("preview-status");
  var frame = document.getElementById("preview-frame");
  var card = frame.closest(".preview");
  var timer = null;
  var seq = 0;
  var RETRIES = 3;

  function put(id, text) { document.getElementById(id).textContent = text; }

  function showIssues(issues) {
    ["subject", "html", "text"].forEach(function (name) {
      var list = document.getElementById("issues-" + name);
      var field = document.getElementById(name);
      list.textContent = "";
      var found = (issues && issues[name]) || [];
      found.forEach(function (issue) {
        var item = document.createElement("li");
        item.textContent = "Line " + issue.line + ", column " + issue.column + ": " + issue.message;
        list.appendChild(item);
      });
      if (found.length) field.setAttribute("aria-invalid", "true");
      else field.removeAttribute("aria-invalid");
    });
  }

  function refresh(attempt) {
    attempt = typeof attempt === "number" ? attempt : 0;
    var mine = ++seq;
    status.classList.remove("bad");
    status.textContent = "Updating…";
    var body = new FormData(form);
    body.set("action", "preview");
    fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      if (response.status >= 500 || response.status === 429) throw new Error("not answered");
      return response.json();
    }).then(function (result) {
      if (mine !== seq) return; // typing went on: a newer preview is coming
      showIssues(result.issues);
      if (!result.ok) {
        status.classList.add("bad");
        card.classList.add("stale"); // the last good preview stays, dimmed
        var errors = result.errors || [{ field: result.field, error: result.error }];
        status.textContent = "Not saved as it is: " + errors.map(function (e) {
          return (e.field ? e.field + ": " : "") + e.error;
        }).join("; ");
        return;
      }
      card.classList.remove("stale");
      status.textContent = "Preview with the sample variables.";
      put("preview-subject", result.subject);
      frame.srcdoc = result.html; // sandboxed: no scripts, no access to this page
      put("preview-source", result.html);
      var textPart = document.getElementById("preview-text-part");
      textPart.hidden = result.text === null;
      put("preview-text", result.text || "");
    }).catch(function () {
      if (mine !== seq) return;
      status.classList.add("bad");
      if (attempt < RETRIES) {
        status.textContent = "The preview could not be updated now; trying again…";
        clearTimeout(timer);
        timer = setTimeout(function () { refresh(attempt + 1); }, 1500 * (attempt + 1));
        return;
      }
      status.textContent = "The preview could not be updated now.";
    });
  }

  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
  document.getElementById("preview-button").addEventListener("click", function (event) {
    event.preventDefault();
    refresh();
  });
  refresh();
})();
