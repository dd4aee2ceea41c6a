"""The operator surface over HTTP: an OpenAI-compatible gateway with the seeds' REST API, feedback and
Prometheus metrics (app.py), routing each request as task runs of one long-lived flow run (service.py,
serve.py), with the admin token rule in auth.py and every metric defined in metrics.py."""
