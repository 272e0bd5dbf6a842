"""Local stack for development and tests: moto on 127.0.0.1, resources built from template.yaml,
and an HTTP front end that turns real requests into API Gateway events for the real handlers."""
