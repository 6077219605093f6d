"""One file per CAM method; the registry (``segxai_cli.cam.registry``) lists them by name."""
