"""Server-side prepared statements for the hot, complex queries of a replay.

The claim and the re-check run once per replayed row. Their SQL is long (a dozen joins and
lateral probes): PostgreSQL spends about four times longer planning them than running them.
psycopg2 never prepares, so each one is sent here as `PREPARE` once per database connection and
`EXECUTE` afterwards, which skips the parse and, once the server settles on a generic plan, the
planning too.

Statement names are derived from the SQL text, because the text varies with the request's scope
shape (window or hand-picked uuids, vendor/ramp narrowing, keyset). The set of names prepared on a
connection lives in SQLAlchemy's `Connection.info`, which follows the DBAPI connection through
the pool and is cleared when that connection is replaced, exactly when the server forgets its
prepared statements too. PREPARE is not transactional, so a rollback does not undo it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session

# `:name` binds as written for `text()`, but not the `::type` casts.
_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_INFO_KEY = "onramp_prepared_statements"


def positional(sql: str) -> tuple[str, list[str]]:
    """(`sql` with `:name` binds turned into `$1..$n`, the names in that order)."""
    order: list[str] = []

    def number(match: re.Match) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return _BIND.sub(number, sql), order


def statement_name(prefix: str, sql: str) -> str:
    return f"{prefix}_{hashlib.sha1(sql.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class PreparedStatement:
    """The two commands for running `sql` as a prepared statement, for any client."""

    name: str
    binds: list[str]  # the `:name` binds, in `$1..$n` order
    types: Mapping[str, str]
    prepare: str  # the PREPARE command, sent once per connection

    def execute(self, placeholder: str = ":{}", *, generic_plan: bool = False) -> str:
        """The EXECUTE command; `placeholder` spells a bind (`:{}` for text(), `%({})s` for
        psycopg2). The arguments travel as literals (psycopg2 interpolates client-side); the casts
        make each one the declared type, arrays included."""
        arguments = ", ".join(f"CAST({placeholder.format(n)} AS {self.types[n]})" for n in self.binds)
        command = f"EXECUTE {self.name} ({arguments})" if self.binds else f"EXECUTE {self.name}"
        if generic_plan:
            # Same round trip: the cursor returns the result of the last statement. A generic plan
            # is costed without the values, and for a keyset claim over a plan's rows a bitmap scan
            # plus a sort of every remaining row could look cheaper than walking the primary key to
            # the first free row (seen in the bench's job measure: tens of ms per claim). With sorts
            # priced out the plan is the index walk; no JIT either, for what is a handful of probes.
            command = (
                "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_sort = off; "
                f"SET LOCAL jit = off; {command}"
            )
        return command


def prepare(prefix: str, sql: str, types: Mapping[str, str]) -> PreparedStatement:
    """`sql` (text with `:name` binds) as a prepared statement; `types` gives the PostgreSQL type
    of every bind (declared in PREPARE, so nothing depends on the server inferring it from
    context, which fails for `:x IS NULL`)."""
    body, binds = positional(sql)
    name = statement_name(prefix, sql)
    declared = ", ".join(types[n] for n in binds)
    return PreparedStatement(name, binds, types, f"PREPARE {name} ({declared}) AS {body}")


# (prefix, sql) -> its statement. Bounded by the scope shapes the code can produce (a few dozen).
_BUILT: dict[tuple[str, str], PreparedStatement] = {}


def execute_prepared(
    session: Session,
    prefix: str,
    sql: str,
    params: Mapping[str, object],
    types: Mapping[str, str],
    *,
    generic_plan: bool = False,
) -> Result:
    """Run `sql` (text with `:name` binds) as a prepared statement on the session's connection.

    `generic_plan`: plan once and reuse the plan (`plan_cache_mode` for the rest of the
    transaction), for statements whose plan does not depend on the values (an index walk that
    stops at the first row); otherwise the server re-plans with the values at every call.
    """
    key = (prefix, sql)
    statement = _BUILT.get(key)
    if statement is None:  # building one (regex, hash) costs more than a replay's claim runs
        statement = _BUILT.setdefault(key, prepare(prefix, sql, types))
    connection = session.connection()
    prepared: set[str] = connection.info.setdefault(_INFO_KEY, set())
    if statement.name not in prepared:
        connection.exec_driver_sql(statement.prepare)
        prepared.add(statement.name)
    return session.execute(text(statement.execute(generic_plan=generic_plan)), {n: params[n] for n in statement.binds})
