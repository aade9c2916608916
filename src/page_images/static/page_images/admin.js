// django-page-images in the Django admin: put each record's container in place.
// The change form is itself a <form>, and a browser drops a <form> written inside another one, so
// the container's chip would save the record instead of asking for a picture. The admin sends the
// container inside a <template> (whose content keeps its forms); this script, loaded right after
// it without `defer`, moves the content into the page while it is still being read, before htmx
// and the event stream's script look for containers.
(function () {
  "use strict";
  var templates = document.querySelectorAll("template.page-images-admin-template");
  for (var i = 0; i < templates.length; i++) {
    var template = templates[i];
    var parent = template.parentNode;
    var nodes = Array.prototype.slice.call(template.content.childNodes);
    parent.replaceChild(template.content, template);
    // htmx already running (the form was loaded by htmx itself): it must see the new markup.
    if (window.htmx && document.readyState === "complete") {
      for (var j = 0; j < nodes.length; j++) {
        if (nodes[j].nodeType === 1) {
          window.htmx.process(nodes[j]);
        }
      }
    }
  }
})();
