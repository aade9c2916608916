// django-page-images: one event stream per page, turned into htmx triggers on <body>.
// Each container listens for "page-images:<key> from:body" and re-fetches its own fragment, so the
// markup needs nothing from this script but the events: it works with htmx 2 and htmx 4 alike.
// It also keeps a swapped container usable by every editor: focus stays where the editor was, each
// change is said in one live region, the wait is counted, and the picture's box is kept.
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

  // Editors with any ability. htmx replaces a container wholesale: focus falls to <body>, and a
  // role="status" inside it is a new region that screen readers may never announce. So one live
  // region, made here once, outside every container, says each change; focus moves to the new
  // container's control when it was in the old one; a waiting container counts its seconds; and a
  // generating container keeps the picture's box, so that nothing moves when the picture lands.
  function scriptText(name, fallback) {
    return (script && script.getAttribute("data-announce-" + name)) || fallback;
  }
  var sentences = {
    ready: scriptText("ready", "Image ready"),
    cancelled: scriptText("cancelled", "Image generation cancelled")
  };

  var live = document.createElement("div");
  live.className = "page-images-live";
  live.setAttribute("aria-live", "polite");
  live.setAttribute("aria-atomic", "true");
  // Made before anything is said: a region that appears with its text is often not announced.
  if (document.body) {
    document.body.appendChild(live);
  } else {
    document.addEventListener("DOMContentLoaded", function () { document.body.appendChild(live); });
  }
  var heard = [];
  var speaking = null;
  function announce(text) {
    if (!text || heard.indexOf(text) !== -1) {
      return;
    }
    if (!live.isConnected && document.body) {
      document.body.appendChild(live);  // a swap of the whole <body> took it away
    }
    heard.push(text);
    if (speaking === null) {
      // Emptied first and filled a moment later, so that the same sentence twice is heard twice;
      // what changes meanwhile (two pictures landing together) is said in the same breath.
      live.textContent = "";
      speaking = window.setTimeout(function () {
        live.textContent = heard.join(" ");
        heard = [];
        speaking = null;
      }, 100);
    }
  }

  // A node's words, without the clock that counts the wait (said once a second, it would drown
  // everything else).
  function textOf(node) {
    var words = "";
    for (var child = node.firstChild; child; child = child.nextSibling) {
      if (child.nodeType === 3) {
        words += child.nodeValue;
      } else if (child.nodeType === 1 && !child.hasAttribute("data-page-images-elapsed")) {
        words += textOf(child);
      }
    }
    return words.replace(/\s+/g, " ").trim();
  }

  // What a container says when it appears: its own sentence if its template gives one, else what
  // it shows in words (a message, an error, a refusal, "Generating image…", what a review asks),
  // else its state's sentence. An empty one is news only just after a job (it was cancelled).
  function sentenceOf(box, before) {
    var own = box.getAttribute("data-page-images-announce");
    if (own !== null) {
      return own;
    }
    var parts = [];
    var notes = box.querySelectorAll(
      ".page-images-message, .page-images-error, p.page-images-generating, .page-images-review-note");
    for (var i = 0; i < notes.length; i++) {
      parts.push(textOf(notes[i]));
    }
    if (box.classList.contains("page-images-refused")) {
      parts.push(textOf(box));
    }
    var state = box.getAttribute("data-state");
    if (!parts.length && state === "empty") {
      return before === "generating" ? sentences.cancelled : "";
    }
    return parts.length ? parts.join(" ") : sentences[state] || "";
  }

  function boxOf(elt) {
    return elt && elt.closest && (elt.closest(".page-images") || elt.closest(".page-images-chip"));
  }

  function nowhere(active) {
    return !active || active === document.body;
  }

  // A click on a container's control (any request but the container's own re-fetch), noted on
  // the container when its request is sent (before hx-disabled-elt disables the button, which may
  // then lose focus). Whichever answer replaces the container first, the click's own or a
  // re-fetch that an event starts, the editor's focus follows. A click counts as focus there when
  // focus is nowhere else: some browsers do not focus a button that is clicked.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    var box = boxOf(elt);
    if (box && !elt.classList.contains("page-images")) {
      var active = document.activeElement;
      box.pageImagesAsked = { focus: box.contains(active) || nowhere(active) };
    }
  });

  // Just before a container is replaced: was focus in it, what did it say, how tall was it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail || {};
    var target = detail.target;
    if (!detail.xhr || !target || !target.classList ||
        !(target.classList.contains("page-images") || target.classList.contains("page-images-chip"))) {
      return;
    }
    var active = document.activeElement;
    var asked = target.pageImagesAsked;
    var state = target.getAttribute("data-state");
    detail.xhr.pageImagesBefore = {
      focus: target.contains(active) || (!!asked && asked.focus && nowhere(active)),
      asked: !!asked,
      state: state,
      sentence: target.classList.contains("page-images") ? sentenceOf(target, null) : "",
      height: state === "generating" ? target.getBoundingClientRect().height : 0
    };
  });

  // Right after the swap: the words and the focus. The new container still wears the old one's
  // class and style attributes until htmx settles it (htmx.config.attributesToSettle), so what is
  // set on those waits for afterSettle, which runs before the browser paints the settled one.
  document.addEventListener("htmx:afterSwap", function (event) {
    var box = event.target;
    var before = swappedFrom(event);
    if (!before) {
      return;
    }
    // htmx binds the new controls only when it settles (20 ms later, longer on a busy page): a
    // click or an Enter in between would post the bare form and reload the page. Bound now, they
    // answer from the moment they are seen (htmx skips them at settle: already bound).
    if (window.htmx) {
      window.htmx.process(box);
    }
    // Said when it changed, or when the editor asked (a second refused click says so again).
    var sentence = sentenceOf(box, before.state);
    if (sentence !== before.sentence || before.asked) {
      announce(sentence);
    }
    if (before.focus) {
      focusIn(box);
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    prepare(event.target);
    var before = swappedFrom(event);
    if (before && before.height) {
      keepHeight(event.target, before.height);
    }
  });

  function swappedFrom(event) {
    var box = event.target;
    var xhr = event.detail && event.detail.xhr;
    var before = xhr && xhr.pageImagesBefore;
    return before && box.classList && box.classList.contains("page-images") ? before : null;
  }

  // A picture that landed takes the focus; otherwise the container's first control (the chip
  // gives way to Cancel, Cancel to the chip, a failed job to Try again, a panel to its first
  // field, whose autofocus htmx applies after), else the container. What is not focusable is
  // made so by script only (tabindex -1), so nobody gets an extra tab stop.
  var CONTROLS = "button:not([disabled]), a[href], textarea, select, input:not([type=hidden])";
  function focusIn(box) {
    var picture = box.getAttribute("data-state") === "ready" && box.querySelector("img");
    var target = picture || box.querySelector(CONTROLS) || box;
    if (!target.matches(CONTROLS) && !target.hasAttribute("tabindex")) {
      target.setAttribute("tabindex", "-1");
    }
    target.focus({ preventScroll: true });
  }

  // The picture has landed but not loaded yet: hold the reserved box's height until it has (its
  // own width and height attributes hold it where the model stores them).
  function keepHeight(box, height) {
    var img = box.querySelector("img");
    if (!img || img.complete) {
      return;
    }
    box.style.minHeight = height + "px";
    function release() {
      box.style.minHeight = "";
    }
    img.addEventListener("load", release, { once: true });
    img.addEventListener("error", release, { once: true });
  }

  // The box a generating container reserves: the picture's width (no wider than its column) and
  // ratio, set through the style object, which a Content-Security-Policy without
  // 'unsafe-inline' allows where a style attribute in the markup would be refused.
  function prepare(root) {
    if (!root || !root.querySelectorAll) {
      return;
    }
    var marks = root.querySelectorAll("[data-page-images-box]");
    for (var i = 0; i < marks.length; i++) {
      var size = marks[i].getAttribute("data-page-images-box").split("x");
      var width = parseInt(size[0], 10);
      var height = parseInt(size[1], 10);
      var box = marks[i].closest(".page-images");
      if (box && width > 0 && height > 0) {
        box.style.setProperty("--page-images-width", width + "px");
        box.style.setProperty("--page-images-ratio", width + " / " + height);
        box.classList.add("page-images-boxed");
      }
    }
    if (root.querySelector("[data-page-images-elapsed]")) {
      tick();
      if (clock === null) {
        clock = window.setInterval(tick, 1000);
      }
    }
  }

  // The wait, counted each second from the seconds the server saw (the browser's clock may be
  // set otherwise), in the page's language: "started {since} ago" comes translated from the
  // template, the units from the browser's Intl.
  var clock = null;
  var formats = {};
  function duration(seconds, lang) {
    var key = lang || "";
    if (!(key in formats)) {
      formats[key] = null;
      try {
        formats[key] = ["hour", "minute", "second"].map(function (unit) {
          return new Intl.NumberFormat(lang || undefined, { style: "unit", unit: unit, unitDisplay: "short" });
        });
      } catch (error) {
        // no Intl units (or a lang attribute Intl refuses): the plain fallback below
      }
    }
    var values = [Math.floor(seconds / 3600), Math.floor(seconds % 3600 / 60), seconds % 60];
    var first = values[0] ? 0 : values[1] ? 1 : 2;
    var parts = [];
    for (var i = first; i < Math.min(first + 2, 3); i++) {
      if (i === first || values[i]) {
        parts.push(formats[key] ? formats[key][i].format(values[i]) : values[i] + " " + ["h", "min", "s"][i]);
      }
    }
    return parts.join(" ");
  }
  function tick() {
    var shown = document.querySelectorAll("[data-page-images-elapsed][data-page-images-text]");
    if (!shown.length && clock !== null) {
      window.clearInterval(clock);
      clock = null;
    }
    var now = window.performance.now();
    for (var i = 0; i < shown.length; i++) {
      var elt = shown[i];
      if (typeof elt.pageImagesFrom !== "number") {
        elt.pageImagesFrom = now - 1000 * (parseInt(elt.getAttribute("data-page-images-elapsed"), 10) || 0);
      }
      var lang = (elt.closest("[lang]") || document.documentElement).getAttribute("lang");
      var seconds = Math.max(0, Math.floor((now - elt.pageImagesFrom) / 1000));
      elt.textContent = elt.getAttribute("data-page-images-text").replace("{since}", duration(seconds, lang));
    }
  }
  prepare(document);

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
