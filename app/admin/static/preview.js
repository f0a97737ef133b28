// The preview page's "start a retry job" confirmation: the operator types the number of rows,
// then the page POSTs the plan to the JSON API (Content-Type: application/json, so the API's
// CSRF rule holds) and goes to the new job's page.
(function () {
  "use strict";
  var start = document.getElementById("start");
  if (!start) {
    return;
  }
  var dialog = document.getElementById("start-dialog");
  var form = document.getElementById("start-form");
  var openButton = document.getElementById("start-open");
  var backButton = document.getElementById("start-cancel");
  var confirmInput = document.getElementById("start-confirm");
  var submit = document.getElementById("start-submit");
  var suppress = document.getElementById("start-suppress");
  var suppressState = document.getElementById("start-suppress-state");
  var rate = document.getElementById("start-rate");
  var error = document.getElementById("start-error");
  var rows = start.dataset.rows;
  var planToken = start.dataset.planToken;
  // The same body from this page gets the same Idempotency-Key: a double submit or a retry after a
  // lost answer returns the job already made instead of making a second one.
  var pageNonce = Date.now().toString(36) + Math.random().toString(36).slice(2);

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
  }

  function confirmed() {
    return confirmInput.value.trim() === rows;
  }

  var durationNote = document.getElementById("start-duration");

  function showSuppression() {
    if (suppress.checked) {
      suppressState.textContent = "suppressed: no webhook or email goes out";
      suppressState.className = "";
    } else {
      suppressState.textContent = "SENT: every successful replay sends its webhook and email";
      suppressState.className = "warn-text";
    }
  }

  function showDuration() {
    var pace = Number(rate.value);
    if (!(pace > 0)) {
      durationNote.textContent = "—";
      return;
    }
    var seconds = Math.ceil(Number(rows) / pace);
    var minutes = Math.floor(seconds / 60);
    durationNote.textContent = "about " + (minutes ? minutes + " min " + (seconds % 60) + " s" : seconds + " s") +
      " at " + pace + " per second";
  }

  openButton.addEventListener("click", function () {
    confirmInput.value = "";
    submit.disabled = true;
    error.hidden = true;
    showSuppression();
    showDuration();
    dialog.showModal();
    confirmInput.focus();
  });
  backButton.addEventListener("click", function () {
    dialog.close();
  });
  confirmInput.addEventListener("input", function () {
    submit.disabled = !confirmed();
  });
  suppress.addEventListener("change", showSuppression);
  rate.addEventListener("input", showDuration);

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!confirmed()) {
      showError("Type " + rows + " to confirm.");
      return;
    }
    var pace = Number(rate.value);
    if (!(pace > 0 && pace <= 200)) {
      showError("The pace must be more than 0 and at most 200 replays per second.");
      return;
    }
    var body = { plan_token: planToken, suppress_notifications: suppress.checked, max_replays_per_second: pace };
    submit.disabled = true;
    submit.textContent = "Starting…";
    error.hidden = true;
    fetch(start.dataset.jobsApi, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "Idempotency-Key": "admin-page:" + planToken + ":" + pageNonce + ":" + body.suppress_notifications + ":" + pace,
      },
      body: JSON.stringify(body),
    })
      .then(function (response) {
        return response.json().then(function (answer) {
          return { ok: response.ok, status: response.status, answer: answer };
        });
      })
      .then(function (result) {
        if (result.ok && result.answer.job_id) {
          window.location.assign(start.dataset.jobPage + encodeURIComponent(result.answer.job_id));
          return;
        }
        var problem = result.answer && result.answer.error;
        showError("Not started (" + result.status + "): " + (problem ? problem.message : "unexpected answer") +
          (problem && problem.details ? " " + JSON.stringify(problem.details) : ""));
        submit.textContent = "Start job";
        submit.disabled = !confirmed();
      })
      .catch(function (err) {
        showError("Could not reach the service: " + err.message + ". Nothing was confirmed; try again.");
        submit.textContent = "Start job";
        submit.disabled = !confirmed();
      });
  });
})();
