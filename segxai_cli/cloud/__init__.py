"""Data where it lives: secrets kept out of every message, retries with backoff, S3 objects.

Nothing here imports rasterio or torch; boto3 (the ``s3`` extra) is imported only when an ``s3://``
output or STAC document is used.
"""
