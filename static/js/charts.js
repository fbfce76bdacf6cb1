// Charts of the reports (Chart.js, vendored in static/vendor/chartjs). Each <canvas data-chart="funnel|lines"
// data-source="ID"> draws the JSON of the <script id="ID" type="application/json"> beside it: axes with their
// values, and each bar's or point's count written on it, so the figure reads without hovering.
(function () {
  "use strict";
  var COLOURS = {
    Sent: "#2563eb", Delivered: "#16a34a", Failed: "#dc2626", Clicked: "#9333ea", Replied: "#ea580c",
    Queued: "#64748b", "Opted out": "#b91c1c"
  };

  // Writes each value beside its bar (horizontal bars) or above its point (lines; at most 48 points).
  var values = {
    id: "smsappValues",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      ctx.save();
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillStyle = "#111827";
      chart.data.datasets.forEach(function (dataset, i) {
        var meta = chart.getDatasetMeta(i);
        if (meta.hidden || (chart.config.type === "line" && dataset.data.length > 48)) { return; }
        meta.data.forEach(function (element, j) {
          var value = dataset.data[j];
          if (chart.config.type === "line" && !value) { return; }
          var text = Number(value).toLocaleString();
          if (chart.options.indexAxis === "y") {
            ctx.textAlign = "left"; ctx.textBaseline = "middle";
            ctx.fillText(text, element.x + 6, element.y);
          } else {
            ctx.textAlign = "center"; ctx.textBaseline = "bottom";
            ctx.fillText(text, element.x, element.y - 4);
          }
        });
      });
      ctx.restore();
    }
  };

  function funnel(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{
          label: "Messages",
          data: data.values,
          backgroundColor: data.labels.map(function (l) { return COLOURS[l] || "#64748b"; })
        }]
      },
      options: {
        indexAxis: "y", animation: false, maintainAspectRatio: false,
        layout: { padding: { right: 48 } },
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "messages" } } }
      },
      plugins: [values]
    });
  }

  function lines(canvas, data) {
    var names = Object.keys(data.lines);
    return new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: names.map(function (name) {
          return {
            label: name, data: data.lines[name], borderColor: COLOURS[name], backgroundColor: COLOURS[name],
            // Straight segments: a curve would draw counts between the buckets that nobody measured.
            tension: 0, pointRadius: 3
          };
        })
      },
      options: {
        animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        // The legend under the chart and some room above the highest point: the values written above the points
        // stay clear of the legend.
        layout: { padding: { top: 16 } },
        plugins: { legend: { position: "bottom" } },
        scales: {
          x: { title: { display: true, text: "per " + data.bucket + " (UTC)" } },
          y: { beginAtZero: true, grace: "10%", ticks: { precision: 0 }, title: { display: true, text: "messages" } }
        }
      },
      plugins: [values]
    });
  }

  function draw(root) {
    if (!window.Chart) { return; }
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) { return; }
      var source = document.getElementById(canvas.getAttribute("data-source"));
      if (!source) { return; }
      canvas.dataset.drawn = "1";
      var data = JSON.parse(source.textContent);
      (canvas.getAttribute("data-chart") === "funnel" ? funnel : lines)(canvas, data);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function () { draw(document); });
})();
