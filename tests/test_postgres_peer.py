import psycopg2


def test_each_test_gets_an_empty_database_of_its_own(pg_dsn: str) -> None:
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchone() == (0,)
        cur.execute("SELECT current_database()")
        row = cur.fetchone()
        assert row is not None and row[0].startswith("t_")
