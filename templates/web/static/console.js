// Supervisor console: small progressive enhancements only; every page works without this file.
// Loaded from the bot itself (the Content-Security-Policy allows no inline script).
"use strict";

function syncPromiseDate(select) {
  // A promise date belongs to a promise to pay only: enable and require it then, disable it otherwise.
  const form = select.form;
  const date = form && form.querySelector('input[name="promise_date"]');
  if (!date) {
    return;
  }
  const promise = select.value === "promise_to_pay";
  date.disabled = !promise;
  date.required = promise;
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-promise-toggle]").forEach(function (select) {
    syncPromiseDate(select);
    select.addEventListener("change", function () { syncPromiseDate(select); });
  });
});
