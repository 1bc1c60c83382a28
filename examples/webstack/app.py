"""The app between nginx and PostgreSQL: each visit is a row; the page counts them."""

import os

import psycopg2
from flask import Flask

app = Flask(__name__)


def connect():  # type: ignore[no-untyped-def]
    with open("/run/secrets/db_password") as f:
        password = f.read().strip()
    return psycopg2.connect(host="db", user="app", dbname="postgres", password=password,
                            connect_timeout=5)


@app.route("/")
def visit() -> str:
    with connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO visits DEFAULT VALUES")
        cur.execute("SELECT count(*) FROM visits")
        (count,) = cur.fetchone()
    greeting = os.environ.get("GREETING", "Hello")
    return f"{greeting}: visit number {count}, kept in PostgreSQL.\n"


@app.route("/health")
def health() -> str:
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
    return "ok\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
