"""The browser side of live refresh: signed stream tokens, the hub, the SSE view, the ASGI app.

:mod:`page_images.events` carries "this record changed" between processes; this package hands it
to the browser tabs that show the record. It imports the buses' interface, never the other way.
"""
