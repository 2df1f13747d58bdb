"""``snas dashboard``: a read-only local web page over the results store.

A stdlib HTTP server (a bounded pool of worker threads, :data:`WORKERS`; a connection
that sends no complete request within :data:`REQUEST_TIMEOUT_S` seconds is closed, and one
answered request per connection) serves a static page
(``dashboard_static/``: plain JavaScript drawing inline SVG, no CDN, no build step) and a
JSON API the page polls every few seconds, so it follows a search while it runs:

* ``GET /api/searches``: every search with status, trial counts and best value.
* ``GET /api/search/<name>``: the search, its trials ranked (:class:`snas.view.SearchView`)
  with density vectors and metrics, the dense baseline and the layer names.
* ``GET /api/search/<name>/epochs``: per trial, the per-epoch curves (accuracy, loss, EGF).
* ``GET /api/search/<name>/graph/<trial>``: a trial's wiring graph laid out in layers,
  at most :data:`MAX_DRAWN_EDGES` edges (the reply says how many it left out).

Names in the URL are percent-decoded path segments and are only ever compared as data
(bound SQL parameters in the store); no path is built from a request. Only GET is served
(every other method is 405), and every reply carries ``Content-Security-Policy:
default-src 'self'`` and ``nosniff``: the page builds its DOM with ``textContent``, so text
from the store is never markup or script. A server bound to a loopback address also
refuses requests whose ``Host`` is not a loopback name, so a web page elsewhere cannot
read the store through DNS rebinding. Bound beyond loopback (``--host 0.0.0.0``), it
answers only to the ``Host`` names of an allow-list: the bound host, this machine's names
and localhost by default, more with ``--allow-host`` (``*``: any).

This module imports neither torch nor ray.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import math
import socket
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from snas.core import metrics as M
from snas.core.errors import SearchError, SnasError
from snas.store import ResultsStore
from snas.view import SearchView

__all__ = ["MAX_DRAWN_EDGES", "REQUEST_TIMEOUT_S", "WORKERS", "DashboardServer",
           "allowed_hosts", "graph_layout", "is_loopback", "make_server"]

#: Seconds a connection may take to send its request (and to take the reply) before it is
#: closed: a half-open or trickling client frees its worker thread.
REQUEST_TIMEOUT_S = 10.0
#: Worker threads answering requests; connections beyond these wait in a queue of
#: :data:`QUEUED_PER_WORKER` per worker, and beyond that get a 503 at once.
WORKERS = 8
QUEUED_PER_WORKER = 4

STATIC_DIR = Path(__file__).with_name("dashboard_static")
# The only files served besides the API: request path -> (file, content type).
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# A browser draws a few thousand SVG lines smoothly; a neuron graph may hold 20,000.
MAX_DRAWN_EDGES = 3000
MAX_DRAWN_NODES = 3000
# Per-epoch metrics the page plots.
_CURVES = (M.EPOCH, M.VAL_ACCURACY, M.TRAIN_ACCURACY, M.VAL_LOSS, M.TRAIN_LOSS, M.EGF_1,
           M.EGF_2)
# Trial fields the page never shows (large, or paths on the search's machine).
_HIDDEN_TRIAL_FIELDS = ("config", "checkpoint_path")


def _plain(value: Any) -> Any:
    """JSON-ready data: non-finite floats -> None, datetimes -> ISO text, keys -> str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if hasattr(value, "item"):  # numpy scalars from pandas
        return _plain(value.item())
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# --------------------------------------------------------------------------------------
# What the API returns


def searches_payload(store: ResultsStore) -> dict[str, Any]:
    keep = ("name", "status", "searcher", "num_samples", "n_trials", "trial_counts", "metric",
            "mode", "best_value", "best_trial", "created_at", "updated_at", "finished_at")
    return {"store": store.url,
            "searches": [{k: s.get(k) for k in keep} for s in store.list_searches()]}


def search_payload(view: SearchView) -> dict[str, Any]:
    """A search's page data: its fields, metric and mode, layer names, the dense baseline's
    id and the ranked trials (``rank`` None for a trial without a finite metric)."""
    metric = view.metric
    trials = []
    for rank, t in enumerate(view.ranked, 1):
        row = {k: v for k, v in t.items() if k not in _HIDDEN_TRIAL_FIELDS}
        row["rank"] = rank if _number(t.get(metric)) is not None else None
        row["near_best"] = view.within_noise(t)
        trials.append(row)
    search = {k: view.record.get(k) for k in ("name", "status", "searcher", "num_samples",
                                              "created_at", "updated_at", "finished_at")}
    best = view.best_value
    return {"search": search, "metric": metric, "mode": view.mode,
            "ranked_by": view.ranked_by,
            "standard_error": view.standard_error(best),
            "verdict": view.confirmation["verdict"] if view.confirmation else None,
            "layers": [layer["name"] for layer in view.layers],
            "baseline": view.baseline["trial_id"] if view.baseline else None,
            "trials": trials}


def epochs_payload(store: ResultsStore, name: str) -> dict[str, Any]:
    frame = store.epochs_frame(name)
    curves: dict[str, dict[str, list]] = {}
    columns = [c for c in _CURVES if c in frame.columns]
    for trial_id, rows in frame.groupby("trial_id", sort=False):
        curve = {c: [_number(v) for v in rows[c].tolist()] for c in columns}
        curve[M.EPOCH] = [None if e is None else int(e) for e in curve.get(M.EPOCH, [])]
        curves[str(trial_id)] = curve
    return {"trials": curves}


def graph_layout(graph: Mapping[str, Any], max_edges: int = MAX_DRAWN_EDGES,
                 max_nodes: int = MAX_DRAWN_NODES) -> dict[str, Any]:
    """Node positions for networkx node-link JSON, edges capped at ``max_edges``.

    Columns are the nodes' ``layer`` attribute where every node has an integer one (the
    MLP neuron graphs), else the topological generation (longest path from a source; a
    cycle puts its nodes after the others) of the node's ``tensor`` where every node names
    one (channel graphs of CNNs), else of the node itself. Within a column nodes keep their stored
    order, spread over [0, 1]. Over the cap, every k-th edge is drawn, so every layer
    stays visible; nodes are those of the drawn edges (all, if at most ``max_nodes``).
    """
    raw_nodes = [n for n in graph.get("nodes") or [] if isinstance(n, Mapping) and "id" in n]
    ids = [n["id"] for n in raw_nodes]
    key = {json.dumps(i): k for k, i in enumerate(ids)}  # ids may be str or int
    edges_raw = graph.get("edges", graph.get("links")) or []
    edges = []
    for e in edges_raw:
        if not isinstance(e, Mapping):
            continue
        s, t = key.get(json.dumps(e.get("source"))), key.get(json.dumps(e.get("target")))
        if s is not None and t is not None:
            edges.append((s, t, e))
    layers = [n.get("layer") for n in raw_nodes]
    tensors = [n.get("tensor") for n in raw_nodes]
    if raw_nodes and all(isinstance(x, int) and not isinstance(x, bool) for x in layers):
        column = list(layers)
        how = "layer attribute"
    elif raw_nodes and all(isinstance(x, str) for x in tensors):
        # Channel graphs: a column per activation tensor, so a channel whose inputs were
        # all pruned stays with its tensor instead of falling back to column 0.
        group_of: dict[str, int] = {}
        for x in tensors:
            group_of.setdefault(x, len(group_of))
        group_edges = {(group_of[tensors[s]], group_of[tensors[t]]) for s, t, _ in edges}
        depth = _generations(len(group_of), [(a, b) for a, b in group_edges if a != b])
        column = [depth[group_of[x]] for x in tensors]
        how = "tensor, by topological generation"
    else:
        column = _generations(len(raw_nodes), [(s, t) for s, t, _ in edges])
        how = "topological generation"
    members: dict[int, list[int]] = {}
    for k, c in enumerate(column):
        members.setdefault(c, []).append(k)
    order = sorted(members)
    x_of = {c: i for i, c in enumerate(order)}
    pos = {}
    for c, ks in members.items():
        for j, k in enumerate(ks):
            pos[k] = (x_of[c], (j + 0.5) / len(ks))
    step = max(1, math.ceil(len(edges) / max_edges)) if max_edges > 0 else len(edges) + 1
    shown = edges[::step][:max_edges]
    if len(raw_nodes) <= max_nodes:
        keep = range(len(raw_nodes))
    else:
        keep = sorted({k for s, t, _ in shown for k in (s, t)})[:max_nodes]
    kept = set(keep)
    shown = [(s, t, e) for s, t, e in shown if s in kept and t in kept]
    index = {k: i for i, k in enumerate(keep)}

    def edge(s: int, t: int, e: Mapping[str, Any]) -> list:
        label = _number(e.get("density"))
        return [index[s], index[t]] + ([label] if label is not None else [])

    return {
        "layout": how,
        "columns": len(order),
        "column_sizes": [len(members[c]) for c in order],
        "nodes": [{"id": str(ids[k]), "x": pos[k][0], "y": pos[k][1]} for k in keep],
        "edges": [edge(s, t, e) for s, t, e in shown],
        "total_nodes": len(raw_nodes),
        "total_edges": len(edges),
        "drawn_edges": len(shown),
        "capped": len(shown) < len(edges) or len(kept) < len(raw_nodes),
    }


def _generations(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Longest-path depth of each node from a source (Kahn's order); cycles go last."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    for s, t in edges:
        succ[s].append(t)
        indegree[t] += 1
    depth = [0] * n
    ready = [k for k in range(n) if indegree[k] == 0]
    seen = 0
    while ready:
        k = ready.pop()
        seen += 1
        for t in succ[k]:
            depth[t] = max(depth[t], depth[k] + 1)
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    if seen < n:
        last = max(depth, default=0) + 1
        depth = [last if indegree[k] > 0 else d for k, d in enumerate(depth)]
    return depth


class _NotFound(Exception):
    """The request names no page, endpoint, search, trial or graph (404)."""


def graph_payload(store: ResultsStore, name: str, trial_id: str) -> dict[str, Any]:
    found = store.graph(name, trial_id)
    if found is None:
        raise _NotFound(f"trial {trial_id!r} of search {name!r} has no wiring graph (yet)")
    graph, statistics = found
    summary = statistics.get("layer_summary") if isinstance(statistics, Mapping) else None
    stats = {k: v for k, v in (statistics or {}).items()
             if k != "layer_summary" and not isinstance(v, (Mapping, list))}
    if isinstance(summary, Mapping):
        stats.update({f"{k}": v for k, v in summary.items()
                      if k in ("active_weights", "total_weights", "density", "dead_neurons",
                               "hidden_neurons")})
    return {"trial_id": trial_id, "graph_level": (statistics or {}).get("graph_level"),
            "statistics": stats, **graph_layout(graph)}


# --------------------------------------------------------------------------------------
# HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "snas-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    def __getattr__(self, name: str) -> Any:
        # Every method but GET (including ones http.server does not know) is 405, not 501.
        if name.startswith("do_") and name != "do_GET":
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self) -> None:
        self.close_connection = True  # a request body we did not read must not be parsed
        self._send_json(405, {"error": f"method {self.command} not allowed; the dashboard "
                                       "is read-only (GET only)"}, {"Allow": "GET"})

    def _send(self, code: int, body: bytes, content_type: str,
              extra: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")  # one request per connection: no idle
        self.close_connection = True             # keep-alive holds a worker thread
        for k, v in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, code: int, data: Any, extra: Mapping[str, str] | None = None) -> None:
        body = json.dumps(_plain(data), allow_nan=False, separators=(",", ":")).encode()
        self._send(code, body, "application/json; charset=utf-8", extra)

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # StreamRequestHandler sets it on the socket
        super().setup()

    def _host_allowed(self) -> bool:
        host = _host_name(self.headers.get("Host") or "")
        if host is None:
            return False
        if self.server.allow_hosts is None:  # loopback: any loopback name, plus --allow-host
            return is_loopback(host) or host in self.server.extra_hosts
        return "*" in self.server.allow_hosts or host in self.server.allow_hosts

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_allowed():
            names = ("localhost" if self.server.allow_hosts is None
                     else ", ".join(sorted(self.server.allow_hosts)))
            self._send_json(403, {"error": f"the dashboard answers only to {names} (add a "
                                           "name with --allow-host)"})
            return
        path = urlsplit(self.path).path
        try:
            if path == "/favicon.ico":  # browsers ask; answer without a console error
                self._send(204, b"", "image/x-icon")
            elif path in _STATIC:
                file, content_type = _STATIC[path]
                self._send(200, (STATIC_DIR / file).read_bytes(), content_type)
            elif path.startswith("/api/"):
                self._send_json(200, self._api(path))
            else:
                raise _NotFound(f"no page {path}")
        except (_NotFound, SearchError) as exc:
            self._send_json(404, {"error": " ".join(str(exc).split())})
        except UnicodeDecodeError:
            self._send_json(400, {"error": "the URL is not percent-encoded UTF-8"})
        except ConnectionError:  # the browser went away (page closed mid-poll)
            self.close_connection = True
        except SnasError as exc:  # the store is unreachable or broken: say so, keep serving
            self._send_json(503, {"error": " ".join(str(exc).split())})
        except Exception as exc:  # a bug: one line to the client, the traceback to stderr
            self.log_error("%s", f"{type(exc).__name__} serving {path}")
            import traceback

            traceback.print_exc()
            self._send_json(500, {"error": f"internal error ({type(exc).__name__})"})

    def _api(self, path: str) -> Any:
        # Split before decoding: a name may hold "/" (sent as %2F).
        parts = [unquote(p, errors="strict") for p in path.split("/")[2:]]
        store = self.server.store
        if parts == ["searches"]:
            return searches_payload(store)
        if len(parts) >= 2 and parts[0] == "search" and parts[1]:
            name, rest = parts[1], parts[2:]
            if not rest:
                return search_payload(SearchView.load(store, name))
            if rest == ["epochs"]:
                return epochs_payload(store, name)
            if len(rest) == 2 and rest[0] == "graph" and rest[1]:
                return graph_payload(store, name, rest[1])
        raise _NotFound(f"no API endpoint {path}")


def _host_name(header: str) -> str | None:
    """The host of a ``Host`` header, lower case, without port or IPv6 brackets."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else None
    return host.rsplit(":", 1)[0] if host.count(":") <= 1 else host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) means this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` names a server bound to ``host`` beyond loopback answers to: the bound
    host (for a wildcard address, this machine's host names), localhost and ``extra``."""
    names = {"localhost", "127.0.0.1", "::1"}
    bound = host.strip("[]").lower()
    try:
        wildcard = ipaddress.ip_address(bound).is_unspecified
    except ValueError:
        wildcard = bound == ""
    if wildcard:
        for name in (socket.gethostname(), socket.getfqdn()):
            if name:
                names.add(name.lower())
    else:
        names.add(bound)
    for name in extra:
        found = _host_name(name) if name != "*" else "*"
        if found:
            names.add(found)
    return frozenset(names)


class DashboardServer(http.server.HTTPServer):
    """The dashboard's HTTP server over one store (``serve_forever`` to run it).

    Requests are answered by a pool of ``workers`` threads (not one thread per
    connection); at most ``workers * QUEUED_PER_WORKER`` accepted connections wait for a
    worker, later ones get a 503 at once. ``request_timeout``: seconds a connection may
    take to send its request. ``allow_hosts``: more ``Host`` names to answer to.
    """

    # SO_REUSEADDR (the default) only skips TIME_WAIT; a port another server listens on
    # stays busy. SO_REUSEPORT would let two servers share it: never.
    allow_reuse_port = False

    def __init__(self, store: ResultsStore, host: str = "127.0.0.1", port: int = 8050,
                 verbose: bool = False, *, allow_hosts: Iterable[str] = (),
                 workers: int = WORKERS, request_timeout: float = REQUEST_TIMEOUT_S) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {request_timeout!r}")
        self.store = store
        self.verbose = verbose
        self.request_timeout = float(request_timeout)
        self.loopback_only = is_loopback(host)
        extra = tuple(allow_hosts)
        self.extra_hosts = frozenset(h for h in (_host_name(e) if e != "*" else "*"
                                                 for e in extra) if h)
        # None: bound to loopback, any loopback name is fine (plus extra_hosts).
        self.allow_hosts = None if self.loopback_only else allowed_hosts(host, extra)
        if self.loopback_only and "*" in self.extra_hosts:
            self.allow_hosts = frozenset({"*"})
        self.workers = workers
        self.max_waiting = workers * QUEUED_PER_WORKER
        self._waiting = 0
        self._lock = threading.Lock()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"snas-dashboard-{self.server_address[1]}")

    # socketserver's hooks: hand each accepted connection to the pool.
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = self._waiting >= self.workers + self.max_waiting
            if not full:
                self._waiting += 1
        if full:
            self._busy(request)
            return
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # the pool is shut down: the server is closing
            with self._lock:
                self._waiting -= 1
            self.shutdown_request(request)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - socketserver's own policy: log, go on
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._waiting -= 1

    def _busy(self, request: Any) -> None:
        body = b'{"error":"the dashboard is busy; try again"}'
        try:
            request.settimeout(1.0)
            request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                            b"Content-Type: application/json\r\nConnection: close\r\n"
                            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        pool = getattr(self, "_pool", None)  # None: the bind failed
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


def make_server(store: ResultsStore, host: str = "127.0.0.1", port: int = 8050,
                verbose: bool = False, *, allow_hosts: Iterable[str] = (),
                workers: int = WORKERS,
                request_timeout: float = REQUEST_TIMEOUT_S) -> DashboardServer:
    """A bound (not yet serving) dashboard server; raises OSError if the port is busy."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    return DashboardServer(store, host, port, verbose, allow_hosts=allow_hosts,
                           workers=workers, request_timeout=request_timeout)


def serve_in_thread(server: DashboardServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests, notebooks); ``server.shutdown()`` stops it."""
    thread = threading.Thread(target=server.serve_forever, name="snas-dashboard", daemon=True)
    thread.start()
    return thread
