"""Real local peers for the tests: PostgreSQL, HTTP servers and platform simulators on 127.0.0.1."""
