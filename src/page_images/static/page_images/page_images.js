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

  var tokenUrl = script && script.getAttribute("data-token-url");
  if ((!url && !tokenUrl) || !window.EventSource) {
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

  // The signed references of the containers this page's stream follows: what the token URL
  // takes when the stream tag came before the containers, or when the page's token expired.
  function followed() {
    var refs = new URLSearchParams();
    var followed = document.querySelectorAll("[data-page-images-follow]");
    for (var i = 0; i < followed.length; i++) {
      var box = followed[i];
      var field = box.querySelector('input[name="ref"]');  // a chip alone carries it in its form
      var ref = box.hasAttribute("hx-get")
        ? new URL(box.getAttribute("hx-get"), window.location.href).searchParams.get("ref")
        : field && field.value;
      if (ref) {
        refs.append("ref", ref);
      }
    }
    return refs;
  }

  function askForStream(then) {
    var refs = followed();
    if (!tokenUrl || !refs.has("ref")) {
      then(null);
      return;
    }
    fetch(tokenUrl, { method: "POST", body: refs, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) { then(answer && answer.url); }, function () { then(null); });
  }

  var source = null;
  var polling = null;
  var renewed = false;

  function poll() {
    if (!polling) {
      polling = window.setInterval(refreshSpinning, 2000);
    }
  }

  function listen(streamUrl) {
    if (!streamUrl) {
      poll();
      return;
    }
    source = new EventSource(streamUrl);
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
    // A stream refused for good (its token expired, a proxy that blocks it, a server that answers
    // 404) is closed by the browser, never retried: ask once for a fresh token, then poll.
    source.addEventListener("error", function () {
      if (source.readyState !== EventSource.CLOSED || polling) {
        return;
      }
      if (renewed) {
        poll();
        return;
      }
      renewed = true;
      askForStream(listen);
    });
  }

  if (url) {
    listen(url);
  } else if (followed().has("ref")) {
    askForStream(listen);
  }  // else nothing on this page to follow: no stream, no polling
  window.addEventListener("pagehide", function () {
    if (source) {
      source.close();
    }
  });
})();
