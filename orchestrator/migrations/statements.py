"""Split a SQL script into statements, for scripts that must run outside a transaction.

PostgreSQL runs a multi-statement query string as one implicit transaction, where
`CREATE INDEX CONCURRENTLY` is refused, so a no-transaction script is sent one statement
at a time. The splitter knows enough of PostgreSQL's lexical rules to find the real `;`:
quoted strings ('...', E'...', "..."), dollar quotes ($$...$$, $tag$...$tag$), line
comments and nested block comments.
"""

from __future__ import annotations

import re

__all__ = ["split_statements"]

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(sql: str) -> list[str]:
    """The statements of `sql`, each without its trailing `;`; empty and comment-only pieces dropped."""
    statements: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            i = _skip_quoted(sql, i, "'", backslash_escapes=escapes)
        elif ch == '"':
            i = _skip_quoted(sql, i, '"', backslash_escapes=False)
        elif ch == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            match = _DOLLAR_TAG.match(sql, i)
            if match:
                end = sql.find(match.group(0), match.end())
                i = n if end < 0 else end + len(match.group(0))
            else:
                i += 1
        elif ch == ";":
            _keep(statements, sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    _keep(statements, sql[start:])
    return statements


def _keep(statements: list[str], piece: str) -> None:
    if _has_code(piece):
        statements.append(piece.strip())


def _has_code(piece: str) -> bool:
    """False for a piece made only of whitespace and comments."""
    i = 0
    n = len(piece)
    while i < n:
        if piece[i].isspace():
            i += 1
        elif piece.startswith("--", i):
            end = piece.find("\n", i)
            i = n if end < 0 else end + 1
        elif piece.startswith("/*", i):
            i = _skip_block_comment(piece, i)
        else:
            return True
    return False


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _skip_quoted(sql: str, i: int, quote: str, *, backslash_escapes: bool) -> int:
    i += 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if backslash_escapes and ch == "\\":
            i += 2
        elif ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2  # doubled quote inside the literal
            else:
                return i + 1
        else:
            i += 1
    return n
