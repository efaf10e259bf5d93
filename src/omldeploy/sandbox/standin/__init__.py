"""Programs that run INSIDE the sandbox test images (stdlib only, Python 3.11 of Debian 12).

They are test stand-ins, not the real OMniLeads software: the role entry points prepare and exec
the real Debian services (PostgreSQL, Redis, nginx, HAProxy, keepalived, Prometheus, exporters,
SeaweedFS for MinIO) and emulate the OMniLeads application images (omlapp, websockets, asterisk,
kamailio, rtpengine, redis2pgsql, fastagi, astami) and Loki/Promtail, which cannot be obtained here.
Only relative imports are used, so the package works under any name inside an image.
"""
