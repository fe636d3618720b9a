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

// The whole call's recording and its transcript in sync: a turn's time button seeks the recording
// to where the turn starts and plays it; while it plays, the turn being heard is highlighted.
function syncRecording(audio) {
  const table = document.getElementById(audio.dataset.sync);
  if (!table) {
    return;
  }
  const rows = Array.prototype.filter.call(table.querySelectorAll("tr[data-offset]"), function (row) {
    return !isNaN(parseFloat(row.dataset.offset));
  });
  rows.sort(function (a, b) { return parseFloat(a.dataset.offset) - parseFloat(b.dataset.offset); });
  let engaged = false;  // nothing is highlighted before the recording is played or a turn is pressed
  function highlight() {
    let current = null;
    rows.forEach(function (row) {
      if (parseFloat(row.dataset.offset) <= audio.currentTime + 0.05) {
        current = row;
      }
    });
    rows.forEach(function (row) {
      const on = engaged && row === current;
      row.classList.toggle("current", on);
      if (on) {
        row.setAttribute("aria-current", "true");
      } else {
        row.removeAttribute("aria-current");
      }
    });
  }
  table.querySelectorAll("button.seek").forEach(function (button) {
    button.addEventListener("click", function () {
      engaged = true;
      audio.currentTime = parseFloat(button.dataset.offset);
      highlight();
      const playing = audio.play();
      if (playing && playing.catch) {
        playing.catch(function () { /* autoplay refused: the position is set, the person presses play */ });
      }
    });
  });
  audio.addEventListener("play", function () { engaged = true; });
  ["timeupdate", "seeked", "play", "pause"].forEach(function (name) { audio.addEventListener(name, highlight); });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("audio[data-sync]").forEach(syncRecording);
});
