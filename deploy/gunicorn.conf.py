"""Gunicorn settings for the Hub SCIM connector.

    gunicorn -c deploy/gunicorn.conf.py

These are the settings ``hub-scim serve`` runs with (both come from
``connector.web.server.gunicorn_options``), so the two ways of starting the
service behave the same. Values follow the ``HUB_SCIM_*`` environment
variables (``HUB_SCIM_HOST``, ``HUB_SCIM_PORT``, ``HUB_SCIM_WORKERS``,
``HUB_SCIM_THREADS``, ``HUB_SCIM_REQUEST_TIMEOUT_SECONDS``, ...). To change
something gunicorn-specific for one deployment, assign it at the end of this file.

Unlike ``hub-scim serve``, this does not migrate the database: run
``hub-scim db upgrade`` once before starting (deploy/README.md).
"""

from connector.settings import load_settings
from connector.web.server import gunicorn_options

_options = gunicorn_options(load_settings())

wsgi_app = "connector.web.wsgi:app"

bind = _options["bind"]
workers = _options["workers"]  # processes; each has its own connection pool
threads = _options["threads"]  # per worker (gthread): requests waiting on the database
worker_class = _options["worker_class"]  # gthread, refusing in SCIM Errors
timeout = _options["timeout"]  # seconds before a worker whose main loop hangs is restarted
graceful_timeout = _options["graceful_timeout"]  # seconds to finish requests on restart
keepalive = _options["keepalive"]
limit_request_line = _options["limit_request_line"]  # longest request line (URL + filter)
limit_request_fields = _options["limit_request_fields"]
limit_request_field_size = _options["limit_request_field_size"]
max_requests = _options["max_requests"]  # recycle workers, staggered by the jitter
max_requests_jitter = _options["max_requests_jitter"]
forwarded_allow_ips = _options["forwarded_allow_ips"]
accesslog = _options["accesslog"]
errorlog = _options["errorlog"]
logger_class = _options["logger_class"]  # redacts secrets in query strings
loglevel = _options["loglevel"]
proc_name = _options["proc_name"]
control_socket_disable = _options["control_socket_disable"]
# Prometheus metrics served by the master when HUB_SCIM_METRICS_PORT is set
# (multiprocess mode: PROMETHEUS_MULTIPROC_DIR, else a temporary directory).
if "when_ready" in _options:
    on_starting = _options["on_starting"]
    when_ready = _options["when_ready"]
    child_exit = _options["child_exit"]
