// The job page, live: polls GET /api/ramps/executions/retry-jobs/<id> every 2 s and updates the
// state, the reason, the progress, the rate, the ETA and the recent errors in place; pause,
// resume and cancel POST JSON to the API. Everything from the server goes in as text, never HTML.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var SCALE = 1000;
  var page = document.getElementById("job-page");
  if (!page) {
    return;
  }
  var api = page.dataset.jobApi;
  var finished = page.dataset.finished.split(" ");
  var executionPage = page.dataset.executionPage;
  var stateBadge = document.getElementById("job-state");
  var live = document.getElementById("live");
  var lastState = stateBadge.textContent.trim();

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, value) {
    var node = byId(id);
    if (node) {
      node.textContent = value;
    }
  }

  function when(iso) {
    if (!iso) {
      return "—";
    }
    var date = new Date(iso);
    if (isNaN(date.getTime())) {
      return iso;
    }
    return date.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) {
      return "—";
    }
    var s = Math.max(0, Math.round(seconds));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    if (h) {
      return h + " h " + m + " min";
    }
    if (m) {
      return m + " min " + (s % 60) + " s";
    }
    return s + " s";
  }

  function renderBar(progress) {
    var x = 0;
    ["success", "error", "skipped"].forEach(function (name) {
      var rect = document.querySelector('#job-bar [data-seg="' + name + '"]');
      var width = progress.total > 0 ? Math.round((SCALE * progress[name]) / progress.total) : 0;
      width = Math.min(width, SCALE - x);
      if (rect) {
        rect.setAttribute("x", String(x));
        rect.setAttribute("width", String(width));
      }
      x += width;
    });
    byId("job-bar").setAttribute("aria-label", progress.done + " of " + progress.total + " done");
  }

  function cell(row, content, className) {
    var td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    if (typeof content === "string") {
      td.textContent = content;
    } else {
      td.appendChild(content);
    }
    row.appendChild(td);
  }

  function renderRecentErrors(errors) {
    var body = byId("recent-errors");
    var rows = document.createDocumentFragment();
    errors.forEach(function (item) {
      var row = document.createElement("tr");
      var link = document.createElement("a");
      link.className = "mono";
      link.href = executionPage.replace("UUID", encodeURIComponent(item.execution_uuid));
      link.title = item.execution_uuid;
      link.textContent = item.execution_uuid.split("-")[0];
      var type = document.createElement("code");
      type.textContent = item.error.type || "";
      cell(row, when(item.at), "nowrap");
      cell(row, link);
      cell(row, type);
      cell(row, item.error.category || "");
      cell(row, item.error.message || "", "message");
      rows.appendChild(row);
    });
    body.replaceChildren(rows);
    byId("recent-errors-table").hidden = errors.length === 0;
    byId("recent-errors-empty").hidden = errors.length !== 0;
  }

  function renderControls(state) {
    var moves = byId("control-moves");
    if (!moves) {
      return; // a viewer: no controls on the page
    }
    var any = false;
    document.querySelectorAll(".control").forEach(function (button) {
      button.hidden = button.dataset.from.split(" ").indexOf(state) < 0;
      any = any || !button.hidden;
    });
    moves.hidden = !any;
    byId("control-none").hidden = any;
  }

  function render(job) {
    var p = job.progress;
    stateBadge.textContent = job.state;
    stateBadge.className = "state state-big state-" + job.state;
    var banner = byId("state-reason");
    banner.hidden = !job.state_reason;
    banner.className = "banner " + (job.state === "halted" ? "banner-halted" : "banner-info");
    setText("state-reason-title", job.state === "halted" ? "The brake stopped this job" : "Reason");
    setText("state-reason-text", job.state_reason || "");
    byId("state-reason-hint").hidden = job.state !== "halted";
    setText("p-done", String(p.done));
    setText("p-total", String(p.total));
    setText("p-percent", String(p.total ? Math.round((100 * p.done) / p.total) : 100));
    setText("p-success", String(p.success));
    setText("p-error", String(p.error));
    setText("p-skipped", String(p.skipped));
    setText("p-remaining", String(p.remaining));
    setText("p-rate", String(job.rate_per_second));
    setText("p-eta", duration(job.eta_seconds));
    setText(
      "p-skipped-reasons",
      Object.keys(p.skipped_by_reason)
        .filter(function (reason) {
          return p.skipped_by_reason[reason] > 0;
        })
        .map(function (reason) {
          return reason + ": " + p.skipped_by_reason[reason];
        })
        .join(" · ")
    );
    setText("started-at", when(job.started_at));
    setText("finished-at", when(job.finished_at));
    renderBar(p);
    renderRecentErrors(job.recent_errors);
    renderControls(job.state);
    if (job.state !== lastState) {
      lastState = job.state;
      refreshEvents();
    }
  }

  // The control events are not part of the job's JSON: take them from a fresh copy of this page.
  function refreshEvents() {
    fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("#events tbody");
        var current = document.querySelector("#events tbody");
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
        }
      })
      .catch(function () {});
  }

  function schedule() {
    window.setTimeout(poll, POLL_MS);
  }

  function poll() {
    fetch(api, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          live.textContent = "signed out: reload the page to sign in again";
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (job) {
        if (!job) {
          return;
        }
        render(job);
        if (finished.indexOf(job.state) >= 0) {
          live.textContent = "finished · " + when(job.finished_at);
          return;
        }
        live.textContent = "live · updated " + new Date().toISOString().slice(11, 19) + " UTC";
        schedule();
      })
      .catch(function (err) {
        live.textContent = "could not update (" + err.message + "); trying again";
        schedule();
      });
  }

  var reasonInput = byId("control-reason");
  var controlError = byId("control-error");

  function showControlError(message) {
    controlError.textContent = message;
    controlError.hidden = false;
  }

  document.querySelectorAll(".control").forEach(function (button) {
    button.addEventListener("click", function () {
      var action = button.dataset.action;
      var reason = reasonInput.value.trim();
      if (action === "cancel" && !reason) {
        showControlError("Say why you cancel: type a reason first. It is kept in the job's events.");
        reasonInput.focus();
        return;
      }
      controlError.hidden = true;
      var buttons = document.querySelectorAll(".control");
      buttons.forEach(function (b) {
        b.disabled = true;
      });
      fetch(button.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(reason ? { reason: reason } : {}),
      })
        .then(function (response) {
          return response.json().then(function (answer) {
            return { ok: response.ok, status: response.status, answer: answer };
          });
        })
        .then(function (result) {
          if (result.ok) {
            reasonInput.value = "";
            render(result.answer);
          } else {
            var problem = result.answer && result.answer.error;
            showControlError("Not done (" + result.status + "): " + (problem ? problem.message : "unexpected answer"));
          }
        })
        .catch(function (err) {
          showControlError("Could not reach the service: " + err.message);
        })
        .finally(function () {
          buttons.forEach(function (b) {
            b.disabled = false;
          });
        });
    });
  });

  poll();
})();
