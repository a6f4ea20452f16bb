// The analytics pages: draw each `canvas[data-chart]` with the report kit's chart code, and
// submit the rows-per-page choice as soon as it changes (without JavaScript a Show button does).
import { drawChart } from "./reportkit.js";

for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
  let spec = null;
  try {
    spec = JSON.parse(canvas.dataset.chart);
  } catch (err) {
    spec = null;
  }
  // Drawn once laid out, so the chart knows its size; these charts do not drill.
  window.requestAnimationFrame(() => drawChart(canvas, spec, () => {}));
}

for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}
