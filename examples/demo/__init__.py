"""Warren's example app: ``email.send``, ``webhook.deliver`` and ``media.thumbnail``.

Run it with ``warren dev --app examples.demo.tasks`` (the default of ``warren
dev``, ``compose.yaml`` and the Kubernetes manifests). ``tasks`` holds the
contracts (all the gateway imports), ``handlers`` the code the consumers run,
``settings`` what the handlers are configured with (``DEMO_*`` variables).
"""
