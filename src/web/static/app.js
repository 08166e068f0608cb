// Shows only the outcome form's fields of the chosen kind, and keeps a
// household's status current (the pipeline applies an outcome within
// seconds of its being recorded). Session cookie only: no token here.
(function () {
  "use strict";
  var form = document.getElementById("outcome");
  if (form) {
    var kind = document.getElementById("kind");
    var show = function () {
      var sets = form.querySelectorAll("fieldset[data-kind]");
      for (var i = 0; i < sets.length; i++) {
        sets[i].hidden = sets[i].getAttribute("data-kind") !== kind.value;
      }
    };
    kind.addEventListener("change", show);
    show();
  }
  // When the pipeline has applied a new outcome (the status or the number
  // of outcomes changed), the page is drawn again by the server, so the
  // status, the next step and the history read exactly as on a fresh
  // page; while the form is being filled in, a notice says so instead.
  var facts = document.querySelector("dl.facts[data-household]");
  if (facts) {
    var id = facts.getAttribute("data-household");
    var status = document.getElementById("status");
    var dirty = false;
    if (form) {
      form.addEventListener("input", function () { dirty = true; });
    }
    var refresh = function () {
      fetch("/api/households/" + encodeURIComponent(id), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (h) {
          if (!h) { return; }
          var changed = h.status !== status.getAttribute("data-status") ||
            String(h.outcomes.length) !== status.getAttribute("data-outcomes");
          if (!changed) { return; }
          if (!dirty) { window.location.replace("/households/" + encodeURIComponent(id)); return; }
          if (!document.getElementById("changed")) {
            var p = document.createElement("p");
            p.id = "changed";
            p.className = "notice";
            p.textContent = "새 기록이 반영되었습니다. 입력을 마친 뒤 새로 고침하세요. (A new outcome was applied; reload after recording.)";
            facts.parentNode.insertBefore(p, facts);
          }
        })
        .catch(function () {});
    };
    // every 3 s for two minutes after the page opened (each look is an
    // audited read of household data); reload the page to follow longer
    var looks = 0;
    var timer = setInterval(function () {
      looks += 1;
      if (looks > 40) { clearInterval(timer); return; }
      refresh();
    }, 3000);
  }
})();
