"""snas dashboard: the JSON API over a store a real search filled, its security rules, the
CLI, and the page itself in headless Chromium (skipped where Chromium is absent)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from _browser import launch_chromium, watch_problems

from snas.cli import main
from snas.dashboard import MAX_DRAWN_EDGES, graph_layout, make_server, serve_in_thread
from snas.store import ResultsStore

ROOT = Path(__file__).parents[2]
DIGITS = str(ROOT / "search_spaces" / "mlp_digits.yaml")

# Text that would run as script if the page ever parsed store data as HTML. The "/" and
# "%" check that names travel as encoded path segments, never as paths.
HOSTILE_SEARCH = "x/../<script>window.__pwned = 1</script>%2F"
HOSTILE_TRIAL = '<img src=x onerror="window.__pwned = 2">'
HOSTILE_NODE = "<svg onload=\"window.__pwned = 3\">"


@pytest.fixture(scope="module")
def store(ray_address, tmp_path_factory):
    """A store with one real small search and one search with hostile names."""
    tmp = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{tmp}/r.db"
    code = main(["search", DIGITS, "--name", "dash", "--store", url, "--storage-path",
                 str(tmp / "exp"), "--quiet", "--num-samples", "3", "--set", "model.width=16",
                 "--set", "training.epochs=2"])
    assert code == 0
    store = ResultsStore(url)
    store.create_search(HOSTILE_SEARCH, "<script>window.__pwned = 4</script>", {}, "random", 2,
                        str(tmp), {"layers": [{"name": "<b onmouseover=x>l0", "shape": [4, 4]},
                                              {"name": "l1", "shape": [2, 4]}]})
    store.upsert_trial(HOSTILE_SEARCH, HOSTILE_TRIAL, density=[0.5, 1.0], status="error",
                       error="<script>window.__pwned = 5</script>")
    store.record_epoch(HOSTILE_SEARCH, HOSTILE_TRIAL, 1,
                       {"val_accuracy": 0.4, "active_weights": 16, "egf_2": 0.2})
    store.record_summary(HOSTILE_SEARCH, HOSTILE_TRIAL,
                         {"val_accuracy": 0.4, "test_accuracy": 0.35, "active_weights": 16})
    store.record_graph(HOSTILE_SEARCH, HOSTILE_TRIAL,
                       {"directed": True, "multigraph": False, "graph": {},
                        "nodes": [{"id": HOSTILE_NODE}, {"id": "out"}],
                        "edges": [{"source": HOSTILE_NODE, "target": "out", "density": 0.5}]},
                       {"graph_level": "layer"})
    yield store
    store.close()


@pytest.fixture(scope="module")
def server(store):
    server = make_server(store, "127.0.0.1", 0)
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()


def request(server, path: str, method: str = "GET", headers: dict | None = None
            ) -> tuple[int, dict, bytes]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})  # the path goes out as given
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def get_json(server, path: str) -> dict:
    status, headers, body = request(server, path)
    assert status == 200, (path, body)
    assert headers["content-type"].startswith("application/json")
    return json.loads(body)


def search_path(name: str, *rest: str) -> str:
    return "/api/" + "/".join(quote(p, safe="") for p in ("search", name, *rest))


# --------------------------------------------------------------------------------------
# API


def test_searches_lists_every_search(server):
    data = get_json(server, "/api/searches")
    by_name = {s["name"]: s for s in data["searches"]}
    assert set(by_name) == {"dash", HOSTILE_SEARCH}
    dash = by_name["dash"]
    assert dash["status"] == "finished" and dash["n_trials"] == 3
    assert dash["metric"] == "val_accuracy" and 0 < dash["best_value"] <= 1
    assert data["store"].startswith("sqlite:///")


def test_search_has_ranked_trials_with_densities_and_metrics(server, store):
    data = get_json(server, search_path("dash"))
    trials = data["trials"]
    assert len(trials) == 3 and data["metric"] == "val_accuracy"
    assert data["layers"][0] == "stem.linear" and len(data["layers"]) == 5
    assert [t["rank"] for t in trials] == [1, 2, 3]
    values = [t["val_accuracy"] for t in trials]
    assert values == sorted(values, reverse=True) or any(t["status"] == "stopped" for t in trials)
    baseline = [t for t in trials if t["is_baseline"]]
    assert len(baseline) == 1 and data["baseline"] == baseline[0]["trial_id"]
    assert baseline[0]["density"] == [1.0] * 5
    for t in trials:
        assert len(t["density"]) == 5 and t["epochs"] in (1, 2)
        for key in ("val_accuracy", "test_accuracy", "active_weights", "egf_1", "egf_2"):
            assert isinstance(t[key], (int, float)), key
        assert "config" not in t and "checkpoint_path" not in t
    stored = {t["trial_id"]: t["active_weights"] for t in store.trials("dash")}
    assert {t["trial_id"]: t["active_weights"] for t in trials} == stored


def test_epochs_give_one_point_per_trained_epoch(server, store):
    data = get_json(server, search_path("dash", "epochs"))["trials"]
    trials = store.trials("dash")
    assert set(data) == {t["trial_id"] for t in trials}
    for t in trials:
        curve = data[t["trial_id"]]
        assert curve["epoch"] == list(range(1, t["epochs"] + 1))
        assert len(curve["val_accuracy"]) == len(curve["egf_2"]) == t["epochs"]
        assert all(0 <= v <= 1 for v in curve["val_accuracy"])


def test_graph_of_best_trial_is_laid_out_by_layer(server, store):
    best = get_json(server, search_path("dash"))["trials"][0]
    data = get_json(server, search_path("dash", "graph", best["trial_id"]))
    _, stats = store.graph("dash", best["trial_id"])
    assert data["graph_level"] == "neuron" and data["layout"] == "layer attribute"
    # digits: 64 inputs, width 16, 10 classes; one edge per active weight
    assert data["columns"] == 6 and data["column_sizes"][0] == 64
    assert data["total_edges"] == stats["layer_summary"]["active_weights"]
    assert data["drawn_edges"] == len(data["edges"]) == min(MAX_DRAWN_EDGES, data["total_edges"])
    assert data["capped"] == (data["total_edges"] > MAX_DRAWN_EDGES)
    assert all(0 <= n["x"] < 6 and 0 < n["y"] < 1 for n in data["nodes"])
    for s, t, *_ in data["edges"]:  # edges go one layer forward
        assert data["nodes"][t]["x"] == data["nodes"][s]["x"] + 1


def test_hostile_names_round_trip_as_data(server):
    data = get_json(server, search_path(HOSTILE_SEARCH))
    assert data["search"]["name"] == HOSTILE_SEARCH
    assert data["trials"][0]["trial_id"] == HOSTILE_TRIAL
    assert data["trials"][0]["error"] == "<script>window.__pwned = 5</script>"
    graph = get_json(server, search_path(HOSTILE_SEARCH, "graph", HOSTILE_TRIAL))
    assert [n["id"] for n in graph["nodes"]] == [HOSTILE_NODE, "out"]
    assert graph["layout"] == "topological generation" and graph["edges"] == [[0, 1, 0.5]]


@pytest.mark.parametrize("path", [
    "/api/search/nope", "/api/search/nope/epochs", "/api/search/dash/graph/nope",
    "/api/search/dash/other", "/api/nothing", "/api/search/", "/nothing",
    "/../pyproject.toml", "/dashboard.py", "/app.js/../../dashboard.py",
    "/%2e%2e/dashboard.py", "/api/search/..%2F..%2Fetc%2Fpasswd",
])
def test_unknown_paths_are_404(server, path):
    status, headers, body = request(server, path)
    assert status == 404, (path, body)
    assert "error" in json.loads(body) and headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO"])
def test_only_get_is_served(server, store, method):
    before = store.count_rows("dash")
    status, headers, _ = request(server, search_path("dash"), method)
    assert status == 405 and headers["allow"] == "GET"
    assert store.count_rows("dash") == before


@pytest.mark.parametrize("path", ["/", "/app.js", "/style.css", "/api/searches",
                                  "/api/search/nope"])
def test_security_headers_on_every_reply(server, path):
    _, headers, _ = request(server, path)
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_page_has_no_inline_script_and_serves_its_assets(server):
    status, headers, body = request(server, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    html = body.decode()
    assert '<script src="/app.js" defer></script>' in html and "<script>" not in html
    status, headers, js = request(server, "/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b"innerHTML" not in js and b"eval(" not in js and b"outerHTML" not in js


def test_foreign_host_header_is_refused(server):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the store."""
    status, _, _ = request(server, "/api/searches", headers={"Host": "evil.example:8050"})
    assert status == 403
    for host in ("localhost:1", "127.0.0.1:8050", "[::1]:8050"):
        assert request(server, "/api/searches", headers={"Host": host})[0] == 200, host


def test_half_open_connection_is_closed_after_the_timeout(store):
    """A client that connects and sends nothing (or half a request) loses its connection
    after request_timeout seconds, and the server keeps answering meanwhile."""
    import socket
    import time

    server = make_server(store, "127.0.0.1", 0, request_timeout=1.0, workers=2)
    serve_in_thread(server)
    try:
        idle = socket.create_connection(server.server_address[:2], timeout=10)
        half = socket.create_connection(server.server_address[:2], timeout=10)
        half.sendall(b"GET /api/searches HTTP/1.1\r\nHost: localhost\r\n")  # no blank line
        began = time.monotonic()
        assert request(server, "/api/searches")[0] == 200  # others are served meanwhile
        for conn in (idle, half):
            assert conn.recv(1024) == b""  # closed by the server, no reply
            conn.close()
        assert time.monotonic() - began < 8
    finally:
        server.shutdown()
        server.server_close()


def test_requests_are_served_by_a_bounded_pool(store):
    """More connections than workers: every request is answered, by at most `workers`
    threads; beyond the queue a connection gets a 503 at once, never a new thread."""
    import socket
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    server = make_server(store, "127.0.0.1", 0, workers=2, request_timeout=2.0)
    serve_in_thread(server)
    try:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: request(server, "/api/searches")[0], range(24)))
        assert codes == [200] * 24
        workers = [t for t in threading.enumerate()
                   if t.name.startswith(f"snas-dashboard-{server.server_address[1]}_")]
        assert 1 <= len(workers) <= 2
        # Fill the workers and the queue with silent connections: the next one is 503.
        silent = [socket.create_connection(server.server_address[:2], timeout=10)
                  for _ in range(server.workers + server.max_waiting)]
        time.sleep(0.3)
        status, _, body = request(server, "/api/searches")
        assert status == 503 and b"busy" in body
        for conn in silent:
            conn.close()
    finally:
        server.shutdown()
        server.server_close()


def _sigint_by_default() -> None:
    """In the child before exec: SIGINT back to its default action, so that Python turns it
    into KeyboardInterrupt. A suite started in the background by a non-interactive shell
    (``make test &``) runs with SIGINT ignored, and a child inherits that: Ctrl-C would then
    never reach the dashboard, as the shell intends for background jobs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_beyond_loopback_warns_and_answers_only_allowed_hosts(store, capsys):
    from snas.dashboard import allowed_hosts

    names = allowed_hosts("0.0.0.0", ["dash.example.org:8050"])
    assert {"localhost", "127.0.0.1", "dash.example.org"} <= names
    assert allowed_hosts("10.1.2.3") >= {"10.1.2.3", "localhost"}
    server = make_server(store, "0.0.0.0", 0, allow_hosts=["dash.example.org"])
    serve_in_thread(server)
    try:
        port = server.server_address[1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def status(host: str) -> int:
            conn.connect()
            conn.request("GET", "/api/searches", headers={"Host": host})
            reply = conn.getresponse()
            reply.read()
            conn.close()
            return reply.status

        assert status(f"dash.example.org:{port}") == 200
        assert status(f"localhost:{port}") == 200
        assert status("evil.example") == 403
    finally:
        server.shutdown()
        server.server_close()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "snas.cli", "dashboard", "--store",
                             store.url, "--host", "0.0.0.0", "--port", "0", "--allow-host",
                             "dash.example.org"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_by_default)
    try:
        assert proc.stdout.readline().startswith("snas dashboard: http://0.0.0.0:")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        warning = proc.stderr.read()
        assert proc.returncode == 0, warning
        warning = warning.splitlines()[0]
        assert warning.startswith("snas dashboard: warning: listening on 0.0.0.0 beyond")
        assert "dash.example.org" in warning and "--allow-host" in warning
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_loopback_server_takes_extra_allowed_hosts(store):
    server = make_server(store, "127.0.0.1", 0, allow_hosts=["box.lan"])
    serve_in_thread(server)
    try:
        assert request(server, "/api/searches", headers={"Host": "box.lan:1"})[0] == 200
        assert request(server, "/api/searches", headers={"Host": "evil.example"})[0] == 403
    finally:
        server.shutdown()
        server.server_close()


def test_graph_layout_caps_edges_and_orders_by_generation():
    n = 120
    nodes = [{"id": i} for i in range(3 * n)]
    edges = [{"source": i, "target": n + j} for i in range(n) for j in range(n)]
    edges += [{"source": n + i, "target": 2 * n + i} for i in range(n)]
    data = graph_layout({"nodes": nodes, "edges": edges})
    assert data["total_edges"] == n * n + n and data["capped"]
    assert data["drawn_edges"] == len(data["edges"]) <= MAX_DRAWN_EDGES
    assert data["layout"] == "topological generation" and data["column_sizes"] == [n, n, n]
    assert {data["nodes"][t]["x"] for _, t in data["edges"]} == {1, 2}  # every layer drawn
    cycle = graph_layout({"nodes": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
                          "edges": [{"source": "a", "target": "b"},
                                    {"source": "b", "target": "c"},
                                    {"source": "c", "target": "b"}]})
    assert cycle["columns"] == 2 and cycle["drawn_edges"] == 3


def test_channel_graph_columns_follow_tensors():
    """A channel with every input pruned stays in its tensor's column."""
    nodes = [{"id": f"{t}:{c}", "tensor": t} for t in ("in", "a", "b") for c in range(2)]
    edges = [{"source": "in:0", "target": "a:0"}, {"source": "a:0", "target": "b:0"},
             {"source": "in:0", "target": "b:1"}]  # a:1 has no input, b:1 skips a
    data = graph_layout({"nodes": nodes, "edges": edges})
    assert data["layout"] == "tensor, by topological generation"
    assert [n["x"] for n in data["nodes"]] == [0, 0, 1, 1, 2, 2]


def test_dashboard_imports_neither_torch_nor_ray():
    code = ("import sys, snas.dashboard, snas.results; "
            "bad = [m for m in ('torch', 'ray') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# --------------------------------------------------------------------------------------
# CLI


def test_cli_serves_until_interrupted(store):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "snas.cli", "dashboard", "--store",
                             store.url, "--port", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_by_default)
    try:
        line = proc.stdout.readline()
        assert line.startswith("snas dashboard: http://127.0.0.1:"), line
        url = urlsplit(line.split()[2])
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        conn.request("GET", "/api/searches")
        assert {s["name"] for s in json.loads(conn.getresponse().read())["searches"]} >= {"dash"}
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_errors_are_one_line(server, tmp_path, capsys):
    port = server.server_address[1]
    ResultsStore(f"sqlite:///{tmp_path}/r.db").close()
    cases = [
        (["dashboard", "--store", "nosuchdialect://x"], "cannot open results store"),
        (["dashboard", "--store", f"sqlite:///{tmp_path}/no/such/dir/r.db"],
         "cannot open results store"),
        (["dashboard", "--store", f"sqlite:///{tmp_path}/missing.db"],
         "no database file"),  # a reader never creates the store
        (["dashboard", "--store", f"sqlite:///{tmp_path}/r.db", "--port", str(port)],
         "the port is in use"),
        (["dashboard", "--store", f"sqlite:///{tmp_path}/r.db", "--port", "70000"],
         "--port must be in [0, 65535]"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "missing.db").exists()


# --------------------------------------------------------------------------------------
# The page in a real browser


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def test_page_shows_a_search_live_and_runs_no_stored_text(browser, server, store, tmp_path):
    # Polling helpers that evaluate strings (wait_for_function) are refused by the page's
    # CSP (no eval), as they should be: locators and expect() poll from outside.
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = watch_problems(page)
    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    page.goto(server.url)

    # the hostile search: its names show as text and nothing of them runs
    page.get_by_text(HOSTILE_SEARCH).click()
    expect(page.locator("#trials tbody td.id")).to_have_text([HOSTILE_TRIAL])
    assert page.text_content("#search-title") == HOSTILE_SEARCH
    page.wait_for_selector("#chart-graph svg circle")
    assert HOSTILE_NODE in page.text_content("#chart-graph")
    # live: a trial recorded now appears without a reload (the page polls)
    store.upsert_trial(HOSTILE_SEARCH, "late-trial", density=[0.25, 0.75], status="running")
    page.wait_for_selector("#trials tbody tr[data-trial='late-trial']", timeout=10_000)

    # the real search
    page.click("#searches a[data-name='dash']")
    expect(page.locator("#trials tbody tr")).to_have_count(3)
    for selector in ("#chart-scatter svg circle.trial-point", "#chart-scatter svg rect.baseline-point",
                     "#chart-heatmap svg rect.cell", "#chart-curves svg path.curve",
                     "#chart-egf svg path.curve", "#chart-graph svg line"):
        page.wait_for_selector(selector, state="attached")
    assert page.locator("#chart-curves path.curve").count() == 3
    assert page.locator("#chart-heatmap rect.cell").count() == 3 * 5
    assert page.locator("tr.baseline").count() == 1
    assert "dense baseline" in page.text_content("#chart-scatter")
    assert "nodes" in page.text_content("#graph-note")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000
    if os.environ.get("SNAS_DASHBOARD_SCREENSHOT"):  # keep a copy to look at
        shutil.copy(shot, os.environ["SNAS_DASHBOARD_SCREENSHOT"])

    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
    assert not problems, problems
    page.close()
