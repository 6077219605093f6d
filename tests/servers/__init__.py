"""Real servers on loopback for the cloud tests: an HTTP file server with Range support, an S3 one (moto)."""
