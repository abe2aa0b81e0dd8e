"""Each verification check passing and failing on its own, against real peers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from orchestrator.contract import DatabaseCheck, HttpCheck, JobCheck, MetricCheck
from orchestrator.health.verification import verify
from orchestrator.redaction import Secret
from tests.health.helpers import HEALTH, healthy, vconfig
from tests.peers.http import HttpPeer, Reply
from tests.peers.prometheus import PrometheusPeer

ODOO_CRON_AGE = "SELECT extract(epoch from now() - max(lastcall)) FROM ir_cron WHERE active"


def only_failure(verdict: object) -> str:
    failures = verdict.failures  # type: ignore[attr-defined]
    assert len(failures) == 1, failures
    return str(failures[0])


# --- health --------------------------------------------------------------------------------------


def test_health_check_passes_on_the_live_url(http_peer: HttpPeer) -> None:
    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(), dsn=None)

    assert verdict.passed and verdict.failures == ()
    assert [(p.endpoint, p.status_code, p.passed) for p in verdict.probes] == [("/health", 200, True)]


def test_health_check_fails_naming_expected_and_received(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(503, "maintenance"))

    verdict = verify(http_peer.url, HEALTH, vconfig(), dsn=None)

    assert not verdict.passed
    assert only_failure(verdict) == "health: failed: expected 200, got 503 Service Unavailable: maintenance"


def test_connection_refused_is_status_zero(refused_url: str) -> None:
    verdict = verify(refused_url, HEALTH, vconfig(), dsn=None)

    assert verdict.probes[0].status_code == 0 and not verdict.probes[0].passed
    assert only_failure(verdict).startswith(f"health: failed: no answer from {refused_url}/health: ConnectionError")


# --- database ------------------------------------------------------------------------------------


def test_database_check_passes_with_select_1_and_the_query(http_peer: HttpPeer, pg_dsn: str) -> None:
    check = DatabaseCheck(query="SELECT count(*) > 0 FROM pg_catalog.pg_class")

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(database=check), dsn=Secret(pg_dsn))

    assert verdict.passed, verdict.failures
    database = [p for p in verdict.probes if p.endpoint == "database"]
    assert len(database) == 1 and database[0].passed and database[0].status_code == 0
    assert (database[0].detail or "").startswith("connected and queried in ")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT false", "database: failed: query returned False (expected true or non-null): SELECT false"),
        ("SELECT NULL", "database: failed: query returned None (expected true or non-null): SELECT NULL"),
        ("SELECT 1 WHERE false", "database: failed: query returned no rows: SELECT 1 WHERE false"),
    ],
)
def test_database_query_must_return_a_true_first_column(
    http_peer: HttpPeer, pg_dsn: str, query: str, message: str
) -> None:
    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(database=DatabaseCheck(query=query)), dsn=Secret(pg_dsn))

    assert only_failure(verdict) == message


def test_database_check_is_read_only(http_peer: HttpPeer, pg_dsn: str) -> None:
    check = DatabaseCheck(query="CREATE TABLE verification_wrote_here (id int)")

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(database=check), dsn=Secret(pg_dsn))

    assert only_failure(verdict).startswith("database: failed: query failed:")
    assert not _table_exists(pg_dsn, "verification_wrote_here")


def test_a_verification_query_cannot_commit_its_way_out_of_read_only(http_peer: HttpPeer, pg_dsn: str) -> None:
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2)")
    for query in (
        "COMMIT; DELETE FROM orders; SELECT true",
        "WITH gone AS (DELETE FROM orders RETURNING 1) SELECT true",
    ):
        check = DatabaseCheck(query=query)
        verdict = verify(healthy(http_peer).url, HEALTH, vconfig(database=check), dsn=Secret(pg_dsn))
        assert not verdict.passed
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        assert cur.fetchone() == (2,)


def _table_exists(dsn: str, name: str) -> bool:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        row = cur.fetchone()
        return bool(row and row[0])


def test_database_latency_over_max_fails(http_peer: HttpPeer, pg_dsn: str) -> None:
    check = DatabaseCheck(query="SELECT pg_sleep(0.2) IS NOT NULL", max_latency_ms=50)

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(database=check), dsn=Secret(pg_dsn))

    message = only_failure(verdict)
    assert message.startswith("database: failed: answered in ") and message.endswith(" ms, over max_latency_ms 50")


def test_database_statement_timeout_cuts_a_slow_query(http_peer: HttpPeer, pg_dsn: str) -> None:
    check = DatabaseCheck(query="SELECT pg_sleep(5) IS NOT NULL", timeout_seconds=0.3)

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(database=check), dsn=Secret(pg_dsn))

    assert "canceling statement due to statement timeout" in only_failure(verdict)


def test_database_unreachable_fails_with_the_reason(http_peer: HttpPeer, refused_url: str) -> None:
    port = refused_url.rsplit(":", 1)[1]
    dsn = Secret(f"postgresql://orchestrator:pw-unreach-71c2@127.0.0.1:{port}/app")

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(database=DatabaseCheck()), dsn=dsn)

    message = only_failure(verdict)
    assert message.startswith("database: failed: cannot connect: OperationalError: ")
    assert "Connection refused" in message


def test_missing_dsn_names_the_credentials_field_and_is_not_retried(http_peer: HttpPeer) -> None:
    config = vconfig(database=DatabaseCheck(), consecutive_failures=5)

    verdict = verify(healthy(http_peer).url, HEALTH, config, dsn=None)

    message = only_failure(verdict)
    assert message.startswith("database: failed: no database connection: the environment variable named by ")
    assert "credentials.db_connection_env_var" in message
    assert len([p for p in verdict.probes if p.endpoint == "database"]) == 1


def test_include_database_false_leaves_out_the_dsn_checks(http_peer: HttpPeer) -> None:
    config = vconfig(
        database=DatabaseCheck(), background_jobs=(JobCheck(name="cron", max_age_seconds=60, sql=ODOO_CRON_AGE),)
    )

    verdict = verify(healthy(http_peer).url, HEALTH, config, dsn=None, include_database=False)

    assert verdict.passed
    assert [p.endpoint for p in verdict.probes] == ["/health"]


def test_dsn_password_never_appears_in_probes_or_failures(http_peer: HttpPeer, pg_dsn: str) -> None:
    """Canary: queries whose errors echo the password, an unparsable DSN, a key=value DSN."""
    password = "kv-canary-" + uuid.uuid4().hex[:10]
    role = "canary_" + uuid.uuid4().hex[:8]
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    conn.close()
    host_part = pg_dsn.split("@", 1)[1]
    host_port, dbname = host_part.split("/", 1)
    host, port = host_port.split(":")
    keyvalue = Secret(f"host={host} port={port} dbname={dbname} user={role} password={password}")
    echo = DatabaseCheck(query=f"SELECT '{password}'::int = 1")
    url_password = pg_dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    url_echo = DatabaseCheck(query=f"SELECT '{url_password}'::int = 1")

    verdicts = [
        verify(healthy(http_peer).url, HEALTH, vconfig(database=echo), dsn=keyvalue),
        verify(http_peer.url, HEALTH, vconfig(database=url_echo), dsn=Secret(pg_dsn)),
        verify(http_peer.url, HEALTH, vconfig(database=DatabaseCheck()), dsn=Secret(f"password={password} dbname")),
        verify(
            http_peer.url,
            HEALTH,
            vconfig(background_jobs=(JobCheck(name="j", max_age_seconds=1, sql=f"SELECT '{password}'::int"),)),
            dsn=keyvalue,
        ),
    ]

    assert all(not v.passed for v in verdicts)
    assert "invalid input syntax for type integer" in verdicts[0].failures[0]
    assert "not a valid PostgreSQL connection string" in verdicts[2].failures[0]
    text = json.dumps([[p.detail for p in v.probes] + list(v.failures) for v in verdicts])
    assert password not in text and url_password not in text
    assert "***" in verdicts[0].failures[0] and "***" in verdicts[1].failures[0]


# --- critical endpoints --------------------------------------------------------------------------


def test_critical_endpoint_passes_with_status_body_and_latency(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("POST", "/api/orders", Reply(201, {"status": "accepted"}))
    check = HttpCheck(
        name="orders",
        path="/api/orders",
        method="POST",
        expected_status=201,
        body_contains="accepted",
        max_latency_ms=500,
    )

    verdict = verify(http_peer.url, HEALTH, vconfig(critical_endpoints=(check,)), dsn=None)

    assert verdict.passed, verdict.failures
    probe = verdict.probes[1]
    assert (probe.endpoint, probe.status_code, probe.passed) == ("endpoint:orders", 201, True)
    assert [s.method for s in http_peer.requests_to("/api/orders")] == ["POST"]


def test_critical_endpoint_wrong_status_fails(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/api/cart", Reply(500, "NullPointerException in CartService"))
    check = HttpCheck(name="cart", path="/api/cart")

    verdict = verify(http_peer.url, HEALTH, vconfig(critical_endpoints=(check,)), dsn=None)

    assert only_failure(verdict) == (
        "endpoint 'cart': failed: GET /api/cart: expected 200, got 500 Internal Server Error: "
        "NullPointerException in CartService"
    )


def test_critical_endpoint_missing_body_text_fails(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/", Reply(200, "<title>Maintenance</title>"))
    check = HttpCheck(name="home", path="/", body_contains="Welcome")

    verdict = verify(http_peer.url, HEALTH, vconfig(critical_endpoints=(check,)), dsn=None)

    assert only_failure(verdict) == (
        "endpoint 'home': failed: GET /: body does not contain 'Welcome'; got 200 OK: <title>Maintenance</title>"
    )


def test_critical_endpoint_too_slow_fails(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/search", Reply(200, "results", delay=0.2))
    check = HttpCheck(name="search", path="/search", max_latency_ms=50)

    verdict = verify(http_peer.url, HEALTH, vconfig(critical_endpoints=(check,)), dsn=None)

    message = only_failure(verdict)
    assert message.startswith("endpoint 'search': failed: GET /search: answered in ")
    assert message.endswith(" ms, over max_latency_ms 50")


def test_absolute_url_versus_path(http_peer: HttpPeer, other_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/app/local", Reply(200))
    other_peer.route("GET", "/external", Reply(200))
    checks = (
        HttpCheck(name="on-base", path="/local"),
        HttpCheck(name="absolute", url=other_peer.url + "/external"),
    )
    health = HEALTH.__class__("health", 200, 2, 1, 0)
    http_peer.route("GET", "/app/health", Reply(200))

    verdict = verify(http_peer.url + "/app", health, vconfig(critical_endpoints=checks), dsn=None)

    assert verdict.passed, verdict.failures
    assert len(http_peer.requests_to("/app/local")) == 1
    assert len(other_peer.requests_to("/external")) == 1 and other_peer.requests_to("/local") == []


# --- background jobs -----------------------------------------------------------------------------


def test_http_job_with_age_seconds(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/jobs/fresh", Reply(200, {"age_seconds": 12.5}))
    http_peer.route("GET", "/jobs/stale", Reply(200, {"age_seconds": 7200}))
    jobs = (
        JobCheck(name="fresh", path="/jobs/fresh", max_age_seconds=60),
        JobCheck(name="stale", path="/jobs/stale", max_age_seconds=3600),
    )

    verdict = verify(http_peer.url, HEALTH, vconfig(background_jobs=jobs), dsn=None)

    assert only_failure(verdict) == "job 'stale': failed: last run 7200 s ago, over max_age_seconds 3600"
    fresh = next(p for p in verdict.probes if p.endpoint == "job:fresh")
    assert fresh.passed and fresh.status_code == 200 and fresh.detail == "last run 12 s ago"


def test_http_job_with_last_run_at_by_absolute_url(http_peer: HttpPeer, other_peer: HttpPeer) -> None:
    recent = (datetime.now(UTC) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    old = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    other_peer.route("GET", "/recent", Reply(200, {"last_run_at": recent}))
    other_peer.route("GET", "/old", Reply(200, {"last_run_at": old}))
    jobs = (
        JobCheck(name="recent", url=other_peer.url + "/recent", max_age_seconds=120),
        JobCheck(name="old", url=other_peer.url + "/old", max_age_seconds=3600),
    )

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(background_jobs=jobs), dsn=None)

    message = only_failure(verdict)
    assert message.startswith("job 'old': failed: last run 10") and message.endswith(" over max_age_seconds 3600")


def test_http_job_without_the_fields_fails(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/jobs", Reply(200, {"ok": True}))
    http_peer.route("GET", "/jobs/html", Reply(200, "<html>"))
    jobs = (
        JobCheck(name="fields", path="/jobs", max_age_seconds=60),
        JobCheck(name="html", path="/jobs/html", max_age_seconds=60),
    )

    verdict = verify(http_peer.url, HEALTH, vconfig(background_jobs=jobs), dsn=None)

    assert verdict.failures[0] == (
        "job 'fields': failed: expected JSON with last_run_at or age_seconds, got 200 OK: {\"ok\": true}"
    )
    assert verdict.failures[1].startswith("job 'html': failed: not JSON (")


def test_sql_job_odoo_cron_age(http_peer: HttpPeer, pg_dsn: str) -> None:
    conn = psycopg2.connect(pg_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE ir_cron (lastcall timestamp, active boolean)")
        cur.execute("INSERT INTO ir_cron VALUES (now() at time zone 'utc' - interval '10 minutes', true)")
        cur.execute("INSERT INTO ir_cron VALUES (now() at time zone 'utc' - interval '3 days', false)")
        cur.execute("CREATE TABLE queue_job (done_at timestamptz)")
        cur.execute("INSERT INTO queue_job VALUES (now() - interval '2 hours')")
    conn.close()
    jobs = (
        JobCheck(name="cron", sql=ODOO_CRON_AGE, max_age_seconds=3600),
        JobCheck(name="cron-strict", sql=ODOO_CRON_AGE, max_age_seconds=60),
        JobCheck(name="queue", sql="SELECT max(done_at) FROM queue_job", max_age_seconds=3600),
        JobCheck(name="never", sql="SELECT max(done_at) FROM queue_job WHERE false", max_age_seconds=3600),
    )

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(background_jobs=jobs), dsn=Secret(pg_dsn))

    assert verdict.failures[0].startswith("job 'cron-strict': failed: last run 60")
    assert verdict.failures[0].endswith(" s ago, over max_age_seconds 60")
    assert verdict.failures[1].startswith("job 'queue': failed: last run 72")
    assert verdict.failures[2] == "job 'never': failed: no run recorded (NULL)"
    assert len(verdict.failures) == 3
    cron = next(p for p in verdict.probes if p.endpoint == "job:cron")
    assert cron.passed and cron.detail == "last run 600 s ago"


def test_sql_job_without_dsn_names_the_credentials_field(http_peer: HttpPeer) -> None:
    jobs = (JobCheck(name="cron", sql=ODOO_CRON_AGE, max_age_seconds=60),)

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(background_jobs=jobs), dsn=None)

    message = only_failure(verdict)
    assert message.startswith("job 'cron': failed: no database connection") and "db_connection_env_var" in message


# --- metrics -------------------------------------------------------------------------------------


def test_prometheus_query_passes_with_a_non_empty_result(http_peer: HttpPeer, prometheus: PrometheusPeer) -> None:
    prometheus.set("http_requests_total", 42, job="app", instance="a")
    prometheus.set("http_requests_total", 17, job="app", instance="b")
    metric = MetricCheck(name="rps", prometheus_url=prometheus.url, query='http_requests_total{job="app"}', min=1)

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(metrics=(metric,)), dsn=None)

    assert verdict.passed, verdict.failures
    assert prometheus.queries == ['http_requests_total{job="app"}']
    probe = verdict.probes[1]
    assert (probe.endpoint, probe.status_code) == ("metric:rps", 200)
    assert (probe.detail or "").startswith("2 series: ")


def test_prometheus_empty_result_fails(http_peer: HttpPeer, prometheus: PrometheusPeer) -> None:
    prometheus.set("up", 1, job="other")
    metric = MetricCheck(name="up", prometheus_url=prometheus.url, query='up{job="app"}')

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(metrics=(metric,)), dsn=None)

    assert only_failure(verdict) == (
        "metric 'up': failed: up{job=\"app\"}: empty result: no series matched, metrics are not flowing"
    )


def test_prometheus_value_outside_bounds_fails(http_peer: HttpPeer, prometheus: PrometheusPeer) -> None:
    prometheus.set("error_ratio", 0.2, job="app")
    metric = MetricCheck(name="errors", prometheus_url=prometheus.url, query="error_ratio", max=0.05)

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(metrics=(metric,)), dsn=None)

    assert only_failure(verdict) == (
        'metric \'errors\': failed: error_ratio{__name__="error_ratio",job="app"} = 0.2, outside [-inf, 0.05]'
    )


def test_prometheus_error_answer_fails_with_its_message(http_peer: HttpPeer, prometheus: PrometheusPeer) -> None:
    metric = MetricCheck(name="bad", prometheus_url=prometheus.url, query="rate(x[")

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(metrics=(metric,)), dsn=None)

    assert only_failure(verdict) == (
        "metric 'bad': failed: rate(x[: query not successful: bad_data: parse error: 'rate(x[' (HTTP 400)"
    )


def test_prometheus_scalar_and_matrix_answers(http_peer: HttpPeer, prometheus: PrometheusPeer) -> None:
    prometheus.answers["scalar(1)"] = (200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}})
    matrix = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "9"], [2, "3"]]}]}
    prometheus.answers["m[1m]"] = (200, {"status": "success", "data": matrix})
    metrics = (
        MetricCheck(name="s", prometheus_url=prometheus.url, query="scalar(1)", min=1, max=1),
        MetricCheck(name="m", prometheus_url=prometheus.url, query="m[1m]", max=5),
    )

    verdict = verify(healthy(http_peer).url, HEALTH, vconfig(metrics=metrics), dsn=None)

    assert verdict.passed, verdict.failures


EXPOSITION = """\
# HELP app_requests_total Requests served.
# TYPE app_requests_total counter
app_requests_total{code="200"} 1027
app_requests_total{code="500"} 3
# HELP app_queue_depth Jobs waiting.
# TYPE app_queue_depth gauge
app_queue_depth 250
"""


def test_scrape_passes_when_the_series_is_there(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/metrics", Reply(200, EXPOSITION))
    metrics = (
        MetricCheck(name="requests", scrape_path="/metrics", series="app_requests_total", min=1),
        MetricCheck(name="family", scrape_path="/metrics", series="app_requests"),
    )

    verdict = verify(http_peer.url, HEALTH, vconfig(metrics=metrics), dsn=None)

    assert verdict.passed, verdict.failures


def test_scrape_fails_on_missing_series_bounds_and_garbage(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/metrics", Reply(200, EXPOSITION))
    http_peer.route("GET", "/garbage", Reply(200, "this is { not prometheus\n"))
    metrics = (
        MetricCheck(name="missing", scrape_path="/metrics", series="app_latency_seconds"),
        MetricCheck(name="queue", scrape_path="/metrics", series="app_queue_depth", max=100),
        MetricCheck(name="garbage", scrape_path="/garbage", series="x"),
    )

    verdict = verify(http_peer.url, HEALTH, vconfig(metrics=metrics), dsn=None)

    assert verdict.failures[0] == "metric 'missing': failed: scrape of /metrics has no series 'app_latency_seconds'"
    assert verdict.failures[1] == "metric 'queue': failed: app_queue_depth = 250, outside [-inf, 100]"
    assert verdict.failures[2].startswith("metric 'garbage': failed: scrape of /garbage is not Prometheus text format")
    assert len(verdict.failures) == 3
