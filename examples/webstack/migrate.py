"""The one-shot migration: the schema the app needs; exits 0 when it is there."""

import psycopg2

with open("/run/secrets/db_password") as f:
    password = f.read().strip()
with (psycopg2.connect(host="db", user="app", dbname="postgres", password=password) as conn,
      conn.cursor() as cur):
    cur.execute("CREATE TABLE IF NOT EXISTS visits "
                "(id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
print("migrate: table visits is there")
