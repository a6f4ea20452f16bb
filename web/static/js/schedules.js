// The schedule form: show only the timing fields of the chosen frequency, show the chosen
// report's filters at once, and let Enter in the people search find rather than save.
// Without this script every field shows, and the form's buttons do the same server-side.
(function () {
  "use strict";
  var form = document.querySelector(".schedule-form");
  if (!form) { return; }
  var frequency = form.querySelector("#frequency");
  function showFields() {
    form.querySelectorAll(".when-field").forEach(function (el) {
      var shown = el.getAttribute("data-for").split(" ").indexOf(frequency.value) !== -1;
      el.hidden = !shown;
    });
  }
  form.classList.add("js");
  frequency.addEventListener("change", showFields);
  showFields();
  var report = form.querySelector("#report");
  var showFilters = form.querySelector("#show-filters");
  if (report && showFilters) {
    showFilters.classList.add("visually-hidden");
    report.addEventListener("change", function () { showFilters.click(); });
  }
  var search = form.querySelector("#people_search");
  var find = form.querySelector("#find-people");
  if (search && find) {
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); find.click(); }
    });
  }
})();
