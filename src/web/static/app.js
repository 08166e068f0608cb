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
  var facts = document.querySelector("dl.facts[data-household]");
  if (facts) {
    var id = facts.getAttribute("data-household");
    var status = document.getElementById("status");
    var history = document.getElementById("history");
    var refresh = function () {
      fetch("/api/households/" + encodeURIComponent(id), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (h) {
          if (!h) { return; }
          status.textContent = h.status_ko + " " + h.status + (h.overdue ? " · 기한초과 overdue" : "");
          status.setAttribute("data-status", h.status);
          history.textContent = "";
          h.outcomes.forEach(function (o) {
            var li = document.createElement("li");
            li.textContent = o.recorded_at_local + " · " + o.label + " " + o.kind;
            history.appendChild(li);
          });
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
