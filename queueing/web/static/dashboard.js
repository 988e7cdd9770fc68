// Live pages: one EventSource per page; a "changed" event names job ids (an empty list:
// anything may have changed). Each element marked data-live (data-live-job="<id>": only
// for that job) is re-read from the server by htmx (its hx-get, on the "live" trigger),
// at most once per JOB_REFRESH_MS (one job's part) or LIST_REFRESH_MS (a list or the
// overview, whose query reads every job: a busy queue must not make each open page run it
// on every progress report) however many events arrive.
(function () {
  "use strict";
  var JOB_REFRESH_MS = 250;
  var LIST_REFRESH_MS = 1000;
  var body = document.body;
  var url = body.getAttribute("data-events");
  if (!url) {
    return;
  }
  var scheduled = new WeakSet();

  function refresh(element) {
    if (scheduled.has(element)) {
      return;
    }
    scheduled.add(element);
    window.setTimeout(function () {
      scheduled.delete(element);
      if (element.isConnected) {
        htmx.trigger(element, "live");
      }
    }, element.hasAttribute("data-live-job") ? JOB_REFRESH_MS : LIST_REFRESH_MS);
  }

  function look(ids) {
    document.querySelectorAll("[data-live]").forEach(function (element) {
      var job = element.getAttribute("data-live-job");
      if (!job || ids.length === 0 || ids.indexOf(Number(job)) !== -1) {
        refresh(element);
      }
    });
  }

  var source = new EventSource(url);
  source.addEventListener("ready", function () {
    body.setAttribute("data-stream", "on");
    // What changed between the page's render and this stream's start was hinted to
    // nobody: look at everything once.
    look([]);
  });
  source.addEventListener("changed", function (event) {
    look(JSON.parse(event.data).ids);
  });
  source.addEventListener("error", function () {
    // EventSource reconnects by itself; the page says it is not live meanwhile.
    body.setAttribute("data-stream", "off");
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
