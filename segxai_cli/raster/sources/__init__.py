"""The kinds of raster source, one module each; :mod:`segxai_cli.raster.source` is their public face."""
