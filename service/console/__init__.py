"""The web console's static assets (``index.html``, ``console.js``, ``console.css``), served
by the gateway under ``/console`` (``warren.service.http.console``)."""
