"""Generate sql/schema.sql from procrastinate's base schema and sql/migrations.

Run through ``scripts/schema-sql``. It migrates a throwaway database with
``Queue.migrate()`` (exactly what ``queueing db migrate`` does), dumps it with
``pg_dump --schema-only``, and makes the dump independent of who ran it:

- ``OWNER TO <the migrating role>`` lines go (whoever runs the file owns what it
  creates, as whoever runs the migrations does); other owners (``queueing_api``) stay;
- the owner's own policies name ``CURRENT_USER`` instead of the role;
- the cluster-wide roles the schema refers to are created first if missing;
- the applied migrations are recorded, so a database built from the file is at the
  schema version the code expects;
- pg_dump's random ``\\restrict`` key and its version lines are dropped, so the same
  migrations always give the same file.

tests/test_schema.py builds one database from the migrations and one from this file and
compares their catalogs; it does not need pg_dump.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from psycopg import sql as pgsql

from queueing import Queue, sql
from queueing.testing import databases

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "sql" / "schema.sql"
COMMAND = "scripts/schema-sql"

# Roles other than the migrating one that own, are granted, or are named by a policy on
# something in the dumped schemas. They are cluster-wide: pg_dump does not create them.
ROLES_QUERY = """
WITH objects AS (
    SELECT c.relowner AS owner, c.relacl AS acl, NULL::oid[] AS roles
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    UNION ALL
    SELECT p.proowner, p.proacl, NULL
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT t.typowner, t.typacl, NULL
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT NULL, a.attacl, NULL
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND a.attacl IS NOT NULL
    UNION ALL
    SELECT NULL, NULL, pol.polroles FROM pg_policy pol
),
referenced AS (
    SELECT owner AS role FROM objects
    UNION SELECT (aclexplode(acl)).grantee FROM objects WHERE acl IS NOT NULL
    UNION SELECT unnest(roles) FROM objects WHERE roles IS NOT NULL
)
SELECT r.rolname, r.rolcanlogin, r.rolbypassrls
  FROM pg_roles r JOIN referenced ON referenced.role = r.oid
 WHERE r.rolname <> current_user AND r.rolname NOT LIKE 'pg\\_%'
 ORDER BY r.rolname
"""

CREATE_ROLE = pgsql.SQL(
    """    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN
        BEGIN
            CREATE ROLE {role} {login} {bypassrls};
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile, by this file or a migration in another database
        END;
    END IF;"""
)

_OWNER_LINE = re.compile(r"^ALTER .+ OWNER TO (.+);$")
_POLICY_ROLES = re.compile(r"^(CREATE POLICY .+? TO )(.+?)((?: USING| WITH CHECK|;).*)$")


def pg_dump_major(pg_dump: str) -> str:
    version = subprocess.run(
        [pg_dump, "--version"], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"(\d+)\.\d+", version)
    return match[1] if match else version.strip()


def make_generic(dump: str, owner: str) -> str:
    """The dump with the migrating role ``owner`` made implicit (see the module doc)."""
    as_owner = {owner, '"' + owner.replace('"', '""') + '"'}
    lines = []
    for line in dump.splitlines():
        if line.startswith(("\\restrict ", "\\unrestrict ", "-- Dumped from ", "-- Dumped by ")):
            continue
        owner_line = _OWNER_LINE.match(line)
        if owner_line and owner_line[1] in as_owner:
            continue
        for name in as_owner:
            if line.endswith(f"; Owner: {name}"):
                line = line.removesuffix(f"; Owner: {name}")
        policy = _POLICY_ROLES.match(line)
        if policy:
            roles = ", ".join("CURRENT_USER" if r in as_owner else r for r in policy[2].split(", "))
            line = policy[1] + roles + policy[3]
        lines.append(line)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    text = text.removesuffix("--\n-- PostgreSQL database dump complete\n--").rstrip("\n")
    for name in as_owner:
        leftover = re.search(rf"^.*\b(?:TO|FROM|BY|Owner:) {re.escape(name)}\b.*$", text, re.M)
        if leftover:
            raise SystemExit(
                f"schema-sql: the dump still names the migrating role {owner!r}, which a "
                f"database built by another role would not: {leftover[0]!r}. Teach "
                f"scripts/schema_sql.py's make_generic() this statement."
            )
    return text


def roles_block(conn: psycopg.Connection[Any]) -> str:
    rows = conn.execute(ROLES_QUERY).fetchall()
    if not rows:
        return ""
    creates = [
        CREATE_ROLE.format(
            name=pgsql.Literal(name),
            role=pgsql.Identifier(name),
            login=pgsql.SQL("LOGIN" if login else "NOLOGIN"),
            bypassrls=pgsql.SQL("BYPASSRLS" if bypassrls else "NOBYPASSRLS"),
        ).as_string(conn)
        for name, login, bypassrls in rows
    ]
    return (
        "--\n-- Cluster-wide roles the schema refers to (created once per cluster)\n--\n\n"
        "DO $$\nBEGIN\n" + "\n".join(creates) + "\nEND;\n$$;\n"
    )


def versions_block(conn: psycopg.Connection[Any]) -> str:
    rows = conn.execute(sql.query("applied_migrations")).fetchall()
    values = pgsql.SQL(",\n    ").join(
        pgsql.SQL("({}, {})").format(pgsql.Literal(version), pgsql.Literal(name))
        for version, name, _applied_at in rows
    )
    insert = pgsql.SQL(
        "INSERT INTO public.queueing_migrations (version, name) VALUES\n    {};"
    ).format(values)
    return (
        "--\n-- The schema version: the migrations above, as `queueing db migrate` records"
        " them\n--\n\n" + insert.as_string(conn) + "\n"
    )


def header(pg_dump: str) -> str:
    last = sql.migrations()[-1]
    return f"""\
-- sql/schema.sql: the whole database schema of queueing at schema version {last.version},
-- as procrastinate {procrastinate.__version__}'s base schema plus sql/migrations/0001 to \
{last.version:04d} leave it.
-- Every table, view, index, trigger, policy, grant and function is here in its
-- current form.
--
-- GENERATED, do not edit: change the migrations, then regenerate with
--     {COMMAND}
-- (pg_dump {pg_dump_major(pg_dump)} --schema-only of a database migrated by Queue.migrate(),
-- made independent of the migrating role). tests/test_schema.py fails when this file and
-- the migrations disagree.
--
-- Databases are built with `queueing db migrate`, not from this file. Running it as a
-- superuser on an empty database gives the same schema (that is what the test does);
-- whoever runs it owns what it creates, as whoever runs the migrations does.

"""


def generate(admin_url: str, pg_dump: str) -> str:
    name = f"queueing_schema_sql_{os.getpid()}"
    databases.drop_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.query("create_database").format(name=pgsql.Identifier(name)))
    url = databases.with_database(admin_url, name)
    try:
        Queue(url).migrate()
        dump = subprocess.run(
            [pg_dump, "--schema-only", "--dbname", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        with psycopg.connect(url) as conn:
            owner = conn.info.parameter_status("session_authorization")
            if owner is None:
                raise SystemExit("schema-sql: the server did not report the session's role")
            return "\n".join(
                [
                    header(pg_dump) + roles_block(conn),
                    make_generic(dump, owner),
                    "",
                    versions_block(conn),
                ]
            )
    finally:
        databases.drop_database(admin_url, name)


def main() -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if sql/schema.sql is out of date"
    )
    args = parser.parse_args()
    text = generate(databases.server_url(), os.environ.get("PG_DUMP", "pg_dump"))
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{TARGET.relative_to(ROOT)} is out of date: run {COMMAND}\n")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {TARGET.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
