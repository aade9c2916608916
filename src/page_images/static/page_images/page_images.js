// django-page-images: one event stream per page, turned into htmx triggers on <body>.
// Each container listens for "page-images:<key> from:body" and re-fetches its own fragment, so the
// markup needs nothing from this script but the events: it works with htmx 2 and htmx 4 alike.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.getAttribute("data-stream-url");

  // The event names a record; its containers carry the record's reference and its event key
  // (data-page-images-ref, data-page-images-key), so the key is read, never derived again here.
  function keyOf(reference) {
    var boxes = document.querySelectorAll(".page-images[data-page-images-ref]");
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].getAttribute("data-page-images-ref") === reference) {
        return boxes[i].getAttribute("data-page-images-key");
      }
    }
    return null;
  }

  function fire(name) {
    document.body.dispatchEvent(new CustomEvent(name, { bubbles: true }));
  }

  function refreshSpinning() {
    var spinning = document.querySelectorAll('.page-images[data-state="generating"]');
    for (var i = 0; i < spinning.length; i++) {
      fire("page-images:" + spinning[i].getAttribute("data-page-images-key"));
    }
  }

  // A refusal (403, 429, 503…) from our views carries the message for the editor in its markup:
  // let htmx swap it in, instead of dropping it as an error. Other error pages are left alone.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail || {};
    var target = detail.target;
    var text = detail.xhr ? detail.xhr.responseText || "" : "";
    if (target && target.closest && (target.closest(".page-images") || target.closest(".page-images-chip")) &&
        text.indexOf('class="page-images') !== -1) {
      detail.shouldSwap = true;
      detail.isError = false;
    }
  });

  // Any other failure (a 404 from a URL pattern that shadows ours, a proxy's 502, the network
  // gone) would leave the click doing nothing visible: say so where the editor clicked.
  var failedText = (script && script.getAttribute("data-failed-text")) ||
    "The request failed. Reload the page and try again.";
  function showFailure(event) {
    var elt = event.detail && event.detail.elt;
    var box = elt && elt.closest && (elt.closest(".page-images") || elt.closest(".page-images-chip"));
    if (!box) {
      return;
    }
    var note = box.querySelector(".page-images-failed");
    if (!note) {
      note = document.createElement("p");
      note.className = "page-images-message page-images-failed";
      note.setAttribute("role", "alert");
      box.appendChild(note);
    }
    note.textContent = failedText;
  }
  document.addEventListener("htmx:responseError", showFailure);
  document.addEventListener("htmx:sendError", showFailure);

  if (!url || !window.EventSource) {
    return;  // no stream: generating containers poll by themselves (their hx-trigger says so)
  }

  // An event can arrive while its container is being replaced: after the request whose answer
  // will replace it was sent (the job ended before the click's answer came back), or in the
  // moment between htmx's swap and its settle, when the new container does not listen yet. Its
  // re-fetch is then lost and the spinner would turn until the next reconnect. So each request
  // notes how many events had arrived when it was sent; once its answer has settled, a container
  // that missed a later event of its own re-fetches itself.
  var seen = 0;
  var lastEvent = {};
  document.addEventListener("htmx:beforeRequest", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr) {
      xhr.pageImagesSeen = seen;
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var box = event.target;
    var xhr = event.detail && event.detail.xhr;
    var name = box && box.getAttribute && box.getAttribute("data-page-images-key");
    if (name && xhr && typeof xhr.pageImagesSeen === "number" && lastEvent[name] > xhr.pageImagesSeen) {
      fire("page-images:" + name);
    }
  });

  var source = new EventSource(url);
  var polling = null;
  source.addEventListener("changed", function (event) {
    var name = keyOf(event.data);
    if (!name) {
      return;  // no container on this page shows that record (any more)
    }
    seen += 1;
    lastEvent[name] = seen;
    fire("page-images:" + name);
  });
  // On every (re)connect: anything still spinning re-fetches, in case its event was missed.
  source.addEventListener("resync", refreshSpinning);
  // A stream that fails for good (a proxy that blocks it, a server that answers 404) is closed by
  // the browser, never retried: re-fetch spinning containers on a timer instead.
  source.addEventListener("error", function () {
    if (source.readyState !== EventSource.CLOSED || polling) {
      return;
    }
    polling = window.setInterval(refreshSpinning, 2000);
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
