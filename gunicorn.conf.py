"""gunicorn settings, in one place for every way the service is started: `make run`, the tests'
service processes, the rehearsal and the bench. gunicorn reads ./gunicorn.conf.py by default;
launchers that start it from elsewhere pass `-c <repo>/gunicorn.conf.py` and their own `-b`.
"""

import os

bind = f"127.0.0.1:{os.environ.get('PORT') or 8000}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
# Threaded workers (gthread): a worker's heartbeat does not wait for its requests, so an executing
# retry batch held up by a slow CRM (25 rows x HTTP_TIMEOUT_SECONDS) is not killed by the worker
# timeout, and triggers are served beside running batches.
threads = 4
timeout = 120
# Logging: JSON lines in the app's shape (app/observability/gunicorn_logging.py). Each request's
# access line is the app's own (path without the query string, with the request id); gunicorn's
# access log would repeat it with the raw URI, credentials a caller put in the URL included.
logger_class = "app.observability.gunicorn_logging.JsonLogger"
accesslog = None
