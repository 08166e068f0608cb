// Shows only the outcome form's fields of the chosen kind, keeps a
// household's status current (the pipeline applies an outcome within
// seconds of its being recorded), refreshes the city's console in place
// every minute, and wires the print and back buttons. Session cookie
// only: no token here.
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
  var print = document.getElementById("print");
  if (print) {
    print.addEventListener("click", function () { window.print(); });
  }
  // a refusal's "back" keeps what was typed: the browser restores the form
  var back = document.querySelector("a[data-back]");
  if (back && window.history.length > 1) {
    back.addEventListener("click", function (e) { e.preventDefault(); window.history.back(); });
  }
  // When the pipeline has applied a new outcome (the status or the number
  // of outcomes changed), the page is drawn again by the server, so the
  // status, its colour, the next step and the history read exactly as on
  // a fresh page; while the form is being filled in, a notice says so.
  var facts = document.querySelector("dl.facts[data-household]");
  if (facts && form) {
    var id = facts.getAttribute("data-household");
    var status = document.getElementById("status");
    var dirty = false;
    form.addEventListener("input", function () { dirty = true; });
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
            p.textContent = "새 기록이 반영되었습니다. 입력을 마친 뒤 새로 고침하세요.";
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
  // The city's console: drawn again by the server every minute, in place
  // (the filters and the page stay as chosen).
  var city = document.getElementById("city");
  if (city) {
    var every = 1000 * Number(city.getAttribute("data-refresh") || "60");
    setInterval(function () {
      fetch(window.location.href, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (!text) { return; }
          var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("city");
          var now = document.getElementById("city");
          if (fresh && now) { now.replaceWith(fresh); }
        })
        .catch(function () {});
    }, every);
  }
})();
